"""Our round trainer against a reference written the way the paper's code trains.

The reference: the paper's encoders as torch.nn.TransformerEncoderLayer with full
attention over a length-1 sequence (query/key projections computed and unused), noise
drawn with one timestep per batch and applied sample by sample in a Python loop, and a
per-sample Dataset behind a DataLoader at batch 32 (collation and a host-to-device copy
per batch), for pre-training, fine-tuning, evaluation and scoring alike. Otherwise it runs
the same round as ours: same data, folds, losses, epochs, early stopping and oversampling.

Three rows, all on the same synthetic data and in the same run:
  reference              paper-style code, paper encoder (full attention)
  ours, transformer_v    our trainer, the same encoder function without Q/K
  ours, default          our trainer with configs/default.yaml (residual MLP encoders)
Prints CV WAF, test WAF, wall time and the time ratio reference / ours.

    python bench/bench_reference.py [--scale default] [--seeds 0 1 2] [--data DIR] [--out bench/results/speed.md]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).parent))
from bench_train import load_synthetic, synthetic_trainset, write_markdown  # noqa: E402

from mersemi.engine.config import Config, load_config  # noqa: E402
from mersemi.engine.metrics import classification_metrics, waf  # noqa: E402
from mersemi.engine.models import MRCCL  # noqa: E402
from mersemi.engine.synthetic import CLASSES, make_synthetic  # noqa: E402
from mersemi.engine.bank import pick_device  # noqa: E402
from mersemi.engine.folds import epoch_order, make_folds  # noqa: E402
from mersemi.engine.train import TrainSet, train_round  # noqa: E402

REF_BATCH = 32


# ---------------------------------------------------------------------- the reference model

class RefEncoder(nn.Module):
    """The paper's encoder as its code builds it: a full TransformerEncoderLayer over [N, 1, D]."""

    def __init__(self, d_in: int, hidden: int, ffn: int, dropout: float) -> None:
        super().__init__()
        nhead = next(h for h in (8, 4, 2, 1) if d_in % h == 0)
        self.layer = nn.TransformerEncoderLayer(d_in, nhead, ffn, dropout, batch_first=True)
        self.to_hidden = nn.Linear(d_in, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_hidden(self.layer(x.unsqueeze(1)).squeeze(1))


class RefNoise(nn.Module):
    """One timestep per batch, noise added sample by sample in Python (as the reference)."""

    def __init__(self, sched) -> None:
        super().__init__()
        self.sched = sched

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = int(torch.randint(0, self.sched.steps, (1,)))
        abar = self.sched.alphas_cumprod[k]
        return torch.stack([abar.sqrt() * row + (1 - abar).sqrt() * torch.randn_like(row) for row in x])


def reference_model(dims: dict[str, int], n_classes: int, cfg: Config) -> MRCCL:
    model = MRCCL(dims, n_classes, cfg)
    m = cfg.model
    for name, d in dims.items():
        model.encoders[name] = RefEncoder(d, m.hidden, m.ffn_dim, m.dropout)
        model.noise[name] = RefNoise(model.noise[name])
    return model


class SampleDataset(Dataset):
    """One sample per __getitem__, as float32 tensors: the DataLoader collates each batch."""

    def __init__(self, feats: dict[str, np.ndarray], rows: np.ndarray, labels: np.ndarray | None):
        self.feats = [np.asarray(f[np.sort(np.unique(rows))], np.float32) for f in feats.values()]
        self.pos = np.searchsorted(np.sort(np.unique(rows)), rows)
        self.labels = labels

    def __len__(self) -> int:
        return len(self.pos)

    def __getitem__(self, i: int):
        xs = [torch.from_numpy(f[self.pos[i]]) for f in self.feats]
        y = -1 if self.labels is None else int(self.labels[i])
        return xs, y


def loader(feats, rows, labels=None, shuffle=False) -> DataLoader:
    return DataLoader(SampleDataset(feats, rows, labels), batch_size=REF_BATCH, shuffle=shuffle,
                      drop_last=shuffle)  # a trailing batch of one breaks batch norm


def ref_predict(model, feats, rows, device) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for xs, _ in loader(feats, rows):
            out.append(torch.softmax(model([x.to(device) for x in xs]), 1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.n_classes), np.float32)


def reference_round(data: TrainSet, n_classes: int, cfg: Config) -> dict:
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    feats = data.features
    model = reference_model({m: x.shape[1] for m, x in feats.items()}, n_classes, cfg).to(device)

    pc = cfg.pretrain
    opt = torch.optim.Adam(model.parameters(), lr=pc.lr, weight_decay=pc.weight_decay)
    model.train()
    for _ in range(pc.epochs if pc.enabled else 0):
        rows = rng.permutation(data.pretrain_rows)[:pc.max_samples_per_epoch or None]
        for xs, _ in loader(feats, rows, shuffle=True):
            terms = model.losses([x.to(device) for x in xs], None, {"imcl_ae": pc.imcl_ae, "imcl_ne": pc.imcl_ne})
            loss = pc.imcl_ae * terms.get("imcl_ae", 0) + pc.imcl_ne * terms["imcl_ne"]
            opt.zero_grad()
            loss.backward()
            opt.step()
    pretrained = {k: v.clone() for k, v in model.state_dict().items()}

    fc, lc = cfg.finetune, cfg.loss
    weights = {"ce": lc.ce, "imcl_ae": lc.imcl_ae, "imcl_ne": lc.imcl_ne}
    oof = np.zeros((len(data.gold_rows), n_classes), np.float32)
    scores = np.zeros((len(data.score_rows), n_classes))
    folds = make_folds(data, n_classes, fc.folds, cfg.seed)
    for fold in folds:
        model.load_state_dict(pretrained)
        opt = torch.optim.Adam(model.parameters(), lr=fc.lr, weight_decay=fc.weight_decay)
        ev_rows, ev_y = data.gold_rows[fold.eval_pos], data.gold_labels[fold.eval_pos]
        best, best_state, stale = -1.0, None, 0
        for _ in range(fc.epochs):
            model.train()
            order = epoch_order(fold.train_labels, fc.oversample, n_classes, rng)
            for xs, y in loader(feats, fold.train_rows[order], fold.train_labels[order], shuffle=True):
                terms = model.losses([x.to(device) for x in xs], y.to(device), weights)
                loss = sum(weights[k] * v for k, v in terms.items())
                opt.zero_grad()
                loss.backward()
                if fc.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), fc.grad_clip)
                opt.step()
            probs = ref_predict(model, feats, ev_rows, device)
            score = waf(ev_y, probs.argmax(1))
            if score > best:
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
                best, stale, oof[fold.eval_pos] = score, 0, probs
            else:
                stale += 1
            if fc.patience and stale >= fc.patience:
                break
        model.load_state_dict(best_state)
        scores += ref_predict(model, feats, data.score_rows, device)
    return {"score_probs": scores / len(folds), "oof_probs": oof}


# ---------------------------------------------------------------------- the comparison

def evaluate(name: str, run, data: TrainSet, truth: np.ndarray, n_test: int) -> dict:
    t0, c0 = time.time(), time.process_time()
    out = run()
    wall, cpu = time.time() - t0, time.process_time() - c0
    score, oof = ((np.concatenate([out.scores.pool, out.scores.test]), out.scores.oof) if hasattr(out, "scores")
                  else (out["score_probs"], out["oof_probs"]))
    test_rows = data.score_rows[-n_test:]
    cv = classification_metrics(data.gold_labels, oof.argmax(1), len(CLASSES))
    test = classification_metrics(truth[test_rows], score[-n_test:].argmax(1), len(CLASSES))
    row = {"name": name, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
           "cv_waf": round(cv["waf"], 4), "test_waf": round(test["waf"], 4)}
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


ROWS = ["reference (paper-style code, full-attention Transformer encoders, DataLoader batch 32)",
        "ours, transformer_v encoder (same function without Q/K)",
        "ours, configs/default.yaml (residual MLP encoders)"]
SHORT = ["reference", "ours transformer_v", "ours default"]


def run_seed(folder: Path, seed: int, scale) -> list[dict]:
    if not (folder / "samples.csv").exists():
        make_synthetic(folder, scale=scale, seed=seed)
    feats, ids, truth = load_synthetic(folder)
    data = synthetic_trainset(feats, ids, truth)
    n_test, C = len(ids["test"]), len(CLASSES)
    default = load_config()
    # The reference runs the default recipe with the paper's encoder and its own
    # threading (torch's default), as the paper's code would.
    ref_cfg = default.replace(**{"model.encoder": "transformer_v", "cpu_train_threads": 0})
    return [
        evaluate(ROWS[0], lambda: reference_round(data, C, ref_cfg), data, truth, n_test),
        evaluate(ROWS[1], lambda: train_round(data, C, default.replace(**{"model.encoder": "transformer_v"})),
                 data, truth, n_test),
        evaluate(ROWS[2], lambda: train_round(data, C, default), data, truth, n_test),
    ]


def mean_sd(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    m = scale * statistics.mean(values)
    if len(values) == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {scale * statistics.stdev(values):.{digits}f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="default")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--data", type=Path,
                    help="folder holding one synthetic set per seed (seed<N>/, generated when missing)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "speed.md")
    args = ap.parse_args()
    scale = args.scale if args.scale in ("default", "mer2024") else float(args.scale)
    per_seed: list[list[dict]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or Path(tmp)
        for seed in args.seeds:
            per_seed.append(run_seed(root / f"seed{seed}", seed, scale))
    default = load_config()
    lines = [f"Synthetic data, scale `{args.scale}`, seeds {', '.join(map(str, args.seeds))}; one full round "
             f"(pre-training, {default.finetune.folds}-fold fine-tuning, scoring pool + test) per seed; "
             f"{torch.get_num_threads()} CPU threads, device {pick_device(default.device)}. "
             "Mean ± sd over seeds; the speed-up is the reference's wall time over the row's, per seed.", "",
             "| trainer | wall s | CPU s | CV WAF | test WAF | speed-up vs reference |", "|---|---|---|---|---|---|"]
    for i, name in enumerate(ROWS):
        rows = [seed_rows[i] for seed_rows in per_seed]
        ratios = [seed_rows[0]["wall_s"] / seed_rows[i]["wall_s"] for seed_rows in per_seed]
        lines.append(f"| {name} | {mean_sd([r['wall_s'] for r in rows], digits=1)} | "
                     f"{mean_sd([r['cpu_s'] for r in rows], digits=1)} | "
                     f"{mean_sd([r['cv_waf'] for r in rows], 100)} | "
                     f"{mean_sd([r['test_waf'] for r in rows], 100)} | "
                     f"{'1.0' if i == 0 else mean_sd(ratios, digits=1)}x |")
    lines += ["", "Per seed (wall s, CV WAF, test WAF):", ""]
    for seed, seed_rows in zip(args.seeds, per_seed):
        lines.append(f"- seed {seed}: " + "; ".join(
            f"{short} {r['wall_s']} s, {100 * r['cv_waf']:.2f}, {100 * r['test_waf']:.2f}"
            for short, r in zip(SHORT, seed_rows)))
    md = "\n".join(lines) + "\n"
    write_markdown(md, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
