"""The whole automatic loop a user runs, at MER2024 scale (or any): synthetic data, import,
round 0, then `train --auto-accept --rounds 3`, each through the `mersemi` command line.

Per step: wall time, CPU use (user + system over wall), peak memory (the process's max RSS).
Per round: its phases (load, pre-training, label spreading, fine-tuning, scoring, writing),
training samples per second, the scoring step's GFLOP/s against a float32 matmul peak measured
in the same run, CV / test WAF and test ECE.

    python bench/bench_loop.py --scale mer2024                      # the loop, 2 cores: ~10 min
    python bench/bench_loop.py --scale mer2024 --pool-factors 0.25 0.5 1 2 --rounds 0
    python bench/bench_loop.py --scale mer2024 --mersemi /other/venv/bin/mersemi --label before
    python bench/bench_loop.py --scale mer2024 --emulate-avx2      # what an AVX2-only CPU gets

The report starts with what the run ran on: the CPU model, torch's capability, one thread's
float32 and bfloat16 matmul rates and the whole machine's float32 peak, measured in the run
(in a child process with the run's environment), and the load average before and after.
`--emulate-avx2` runs every child with ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
MKL_ENABLE_INSTRUCTIONS=AVX2 FAISS_SIMD_LEVEL=AVX2 OPENBLAS_CORETYPE=Haswell (EMULATE_AVX2): torch's
own kernels, oneDNN (bfloat16), MKL (float32 matmul), FAISS and its OpenBLAS limited to AVX2.

`--mersemi` runs another installation's command line on the same data (an older version, to
measure before and after in one run); `--pool-factors` makes the growth table (time and peak
memory against the pool's size, with a linear projection to 10x); `--rounds 0` stops after
round 0. Writes Markdown to --out and every figure to --json.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MERSEMI = [sys.executable, "-m", "mersemi.ui.cli"]


# What an AVX2-only CPU runs, on a newer x86 one: each library's own switch (bench/results/loop.md
# gives the rates measured with and without them).
EMULATE_AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                "FAISS_SIMD_LEVEL": "AVX2", "OPENBLAS_CORETYPE": "Haswell"}
CHILD_ENV: dict[str, str] = {}


def measured(cmd: list[str]) -> dict:
    """`run` with the child's own resource usage (os.wait4 on its pid)."""
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", **CHILD_ENV))
    out_chunks, err_chunks = [], []
    # read both pipes to the end before reaping, so the child never blocks on a full pipe
    import threading

    def drain(pipe, into):
        into.append(pipe.read())

    threads = [threading.Thread(target=drain, args=(proc.stdout, out_chunks)),
               threading.Thread(target=drain, args=(proc.stderr, err_chunks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))}: exit {code}: {err_chunks[0].decode()[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "cpu_pct": round(100 * cpu / max(wall, 1e-9)),
            "peak_mb": round(usage.ru_maxrss / 1024), "out": out_chunks[0].decode()}


_MACHINE = r"""
import json, os, time, torch
from mersemi.engine.hardware import cpu_kernels

def peak(n=2048, repeats=5):
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_t(a, b) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9

def _t(a, b):
    t0 = time.perf_counter(); a @ b; return time.perf_counter() - t0

k = cpu_kernels()
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
print(json.dumps({"cpu": model, "cpus": len(os.sched_getaffinity(0)), "capability": k.capability,
                  "bf16_kernel": k.bf16_kernel, "f32_gflops_thread": k.f32_gflops, "bf16_gflops_thread": k.bf16_gflops,
                  "reduced": str(k.reduced), "note": k.note(), "peak_gflops": peak()}))
"""


def machine() -> dict:
    """What the run runs on, measured in a child with the children's environment: the CPU model,
    torch's capability, one thread's float32 / bfloat16 matmul rates (engine/hardware.py, the
    decision a round takes) and the float32 peak with torch's default threads."""
    out = subprocess.run([sys.executable, "-c", _MACHINE], capture_output=True, text=True, check=True,
                         env=dict(os.environ, **CHILD_ENV)).stdout
    return json.loads(out.strip().splitlines()[-1]) | {"env": dict(CHILD_ENV)}


def machine_lines(m: dict, load: tuple[list[float], list[float]]) -> list[str]:
    bf16 = f"{m['bf16_gflops_thread']:.1f}" if m["bf16_gflops_thread"] else "no kernel (emulated)"
    env = " ".join(f"{k}={v}" for k, v in m["env"].items()) or "none"
    return [f"CPU: {m['cpu']}, {m['cpus']} CPUs; torch capability {m['capability']}; environment: {env}.",
            f"Matmul measured in this run: float32 {m['f32_gflops_thread']:.0f} GFLOP/s a thread, bfloat16 {bf16}; "
            f"float32 peak {m['peak_gflops']:.0f} GFLOP/s ({m['cpus']} CPUs). Decision: {m['note']}.",
            f"Load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load[0])}; after: "
            f"{', '.join(f'{x:.2f}' for x in load[1])}.", ""]


def flops_per_row(dims: dict[str, int], config: str) -> float:
    """FLOPs of one forward pass (the voted logits) for one row: what scoring costs per row and
    fold model."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from mersemi.engine.config import load_config, preset_path
    from mersemi.engine.models import build_model

    cfg = load_config(preset_path(config) if not config.endswith((".yaml", ".yml")) else config)
    model = build_model(dims, 6, cfg).eval()
    batch = [torch.randn(64, d) for d in dims.values()]
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(batch)
    return counter.get_total_flops() / 64


def rounds_of(project: Path) -> list[dict]:
    """Every round as the project's store recorded it (any version of the tool writes these)."""
    con = sqlite3.connect(f"file:{project / 'project.db'}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT id, status, metrics, composition FROM rounds ORDER BY id").fetchall()
    finally:
        con.close()
    out = []
    for rid, status, metrics, composition in rows:
        m, comp = json.loads(metrics or "{}"), json.loads(composition or "{}")
        out.append({"id": rid, "status": status, "metrics": m, "composition": comp,
                    "wall_s": m.get("wall_s"), "cv_waf": m.get("cv_waf"), "test_waf": m.get("test_waf"),
                    "test_ece": m.get("test_ece")})
    return out


def loop(work: Path, scale: str, pool_factor: float, rounds: int, mersemi: list[str], config: str,
         seed: int, data: Path | None) -> dict:
    """One pass: data (made once per pool factor), import, round 0, the automatic rounds."""
    from mersemi.engine.synthetic import make_synthetic

    res: dict = {"pool_factor": pool_factor, "steps": {}, "rounds": []}
    if data is None or not (data / "samples.csv").exists():
        data = work / f"data-{pool_factor}"
        t0 = time.time()
        make_synthetic(data, scale=scale if scale in ("default", "mer2024") else float(scale), seed=seed,
                       pool_factor=pool_factor)
        res["steps"]["synth"] = {"wall_s": round(time.time() - t0, 1)}
    project = work / f"project-{pool_factor}-{time.time_ns()}"
    measured(mersemi + ["init", str(project)])
    res["steps"]["import"] = {k: v for k, v in measured(mersemi + ["import", str(project), "--native", str(data)]
                                                        ).items() if k != "out"}
    step = measured(mersemi + ["train", str(project), "--config", config, "--json"])
    res["steps"]["round 0"] = {k: v for k, v in step.items() if k != "out"}
    if rounds:
        step = measured(mersemi + ["train", str(project), "--config", config, "--json", "--auto-accept",
                                   "--rounds", str(rounds)])
        res["steps"][f"--auto-accept --rounds {rounds}"] = {k: v for k, v in step.items() if k != "out"}
    res["rounds"] = rounds_of(project)
    con = sqlite3.connect(f"file:{project / 'project.db'}?mode=ro", uri=True)
    res["samples"] = dict(con.execute("SELECT split, count(*) FROM samples GROUP BY split").fetchall())
    con.close()
    res["loop_s"] = round(sum(s["wall_s"] for k, s in res["steps"].items() if k.startswith(("round", "--"))), 1)
    res["data"] = str(data)
    return res


def round_rows(res: dict, flops: float, peak: float) -> list[str]:
    lines = ["| round | status | wall s | load s (%) | pre-train | graph | fine-tune | score | write | train samples/s "
             "| scoring GFLOP/s (% of matmul) | pseudo-labels | CV WAF | test WAF | test ECE |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    scored = res["samples"]["unlabeled"] + res["samples"]["test"]
    for r in res["rounds"]:
        m = r["metrics"].get("timings") or {}
        folds = len(r["metrics"].get("folds") or []) or 5
        score_s = m.get("score_s") or 0
        gflops = flops * scored * folds / score_s / 1e9 if score_s else float("nan")
        samples = (r["metrics"].get("samples_trained") or {}).get("finetune")
        rate = samples / m["finetune_s"] if samples and m.get("finetune_s") else float("nan")
        write = (r["wall_s"] or 0) - (m.get("total_s") or 0) if r.get("wall_s") else float("nan")

        def f(x, fmt=".0f"):
            return "" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, fmt)

        wall = r.get("wall_s") or float("nan")

        def share(x, wall=wall):   # a phase's seconds and its share of the round's wall time
            return "" if x is None else f"{x:.0f} ({100 * x / wall:.0f} %)"

        lines.append(f"| {r['id']} | {r['status']} | {f(r.get('wall_s'))} | {share(m.get('load_s'))} | "
                     f"{share(m.get('pretrain_s'))} | {share(m.get('graph_s'))} | {share(m.get('finetune_s'))} | "
                     f"{share(m.get('score_s'))} | {share(write)} | {f(rate)} | "
                     f"{f(gflops)} ({f(100 * gflops / peak)} %) | "
                     f"{(r.get('composition') or {}).get('pseudo', '')} | "
                     f"{f(100 * (r.get('cv_waf') or np.nan), '.2f')} | "
                     f"{f(100 * (r.get('test_waf') or np.nan), '.2f')} | {f(r.get('test_ece'), '.3f')} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="mer2024", help="synthetic scale: mer2024, default or a factor")
    ap.add_argument("--pool-factors", type=float, nargs="+", default=[1.0],
                    help="pool sizes relative to the scale's (the growth table: 0.25 0.5 1 2)")
    ap.add_argument("--rounds", type=int, default=3, help="automatic rounds after round 0 (0: round 0 only)")
    ap.add_argument("--config", default="default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mersemi", nargs="+", default=None,
                    help="the command line to run (default: this installation's); e.g. another venv's mersemi")
    ap.add_argument("--label", default="this version", help="what the run is called in the report")
    ap.add_argument("--data", type=Path, help="reuse this synthetic data folder (one pool factor)")
    ap.add_argument("--work", type=Path, help="keep projects and data here (default: a temporary folder)")
    ap.add_argument("--out", type=Path, help="append the Markdown report here")
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument("--emulate-avx2", action="store_true",
                    help="run every child as an AVX2-only CPU would (EMULATE_AVX2's switches)")
    args = ap.parse_args()
    if args.emulate_avx2:
        CHILD_ENV.update(EMULATE_AVX2)
    mersemi = args.mersemi or MERSEMI
    load_before = list(os.getloadavg())
    box = machine()
    peak = box["peak_gflops"]
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        runs = []
        for factor in args.pool_factors:
            res = loop(work, args.scale, factor, args.rounds, mersemi, args.config, args.seed, args.data)
            dims = {m: int(np.load(Path(res["data"]) / f"{m}.npy", mmap_mode="r").shape[1])
                    for m in ("audio", "text", "video") if (Path(res["data"]) / f"{m}.npy").exists()}
            res["flops_per_row"] = flops_per_row(dims, args.config)
            runs.append(res)
            print(json.dumps({k: v for k, v in res.items() if k != "rounds"}), file=sys.stderr, flush=True)
    load_after = list(os.getloadavg())
    lines = [f"## {args.label}: `--scale {args.scale}`, config `{args.config}`, seed {args.seed}", "",
             *machine_lines(box, (load_before, load_after))]
    for res in runs:
        lines += [f"### pool x{res['pool_factor']}: loop {res['loop_s'] / 60:.1f} min "
                  f"(round 0 + {args.rounds} automatic rounds)", "",
                  "| step | wall s | CPU s (user + sys) | CPU % | peak MB |", "|---|---|---|---|---|"]
        lines += [f"| {k} | {s['wall_s']} | {s.get('cpu_s', '')} | {s.get('cpu_pct', '')} | {s.get('peak_mb', '')} |"
                  for k, s in res["steps"].items()]
        lines += [""] + round_rows(res, res["flops_per_row"], peak) + [""]
    if len(runs) > 1:
        lines += ["### growth with the pool", "", "| pool x | loop s | round 0 s | peak MB |", "|---|---|---|---|"]
        xs = np.array([r["pool_factor"] for r in runs])
        loops = np.array([r["loop_s"] for r in runs])
        peaks = np.array([max(s.get("peak_mb", 0) for s in r["steps"].values()) for r in runs])
        for r, p in zip(runs, peaks):
            lines.append(f"| {r['pool_factor']} | {r['loop_s']} | {r['steps']['round 0']['wall_s']} | {p} |")
        t_fit, m_fit = np.polyfit(xs, loops, 1), np.polyfit(xs, peaks, 1)
        lines += ["", f"Linear fit, projected to 10x the pool: loop {np.polyval(t_fit, 10) / 60:.0f} min, peak "
                  f"memory {np.polyval(m_fit, 10) / 1024:.1f} GB."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")
    if args.json:
        args.json.write_text(json.dumps({"peak_gflops": peak, "machine": box, "load": [load_before, load_after],
                                         "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
