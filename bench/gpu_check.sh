#!/usr/bin/env bash
# On a machine with a CUDA GPU: the tests marked gpu, then the whole automatic loop at MER2024
# scale on the GPU, with its figures (bench/bench_loop.py). About 5 minutes on one H200.
#   bash bench/gpu_check.sh            # from the repository root
set -euo pipefail
cd "$(dirname "$0")/.."
export GRADIO_ANALYTICS_ENABLED=False
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || { python3 -m venv .venv && .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q torch \
  && .venv/bin/pip install -q -e '.[test]'; PY=.venv/bin/python; }
"$PY" -c "import torch, sys; ok = torch.cuda.is_available(); print('CUDA:', ok, torch.version.cuda, \
  [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]); sys.exit(0 if ok else 1)" \
  || { echo "gpu_check: no CUDA device on this machine" >&2; exit 1; }
"$PY" -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py
OUT=${OUT:-bench/results}
mkdir -p "$OUT"
cfg=$(mktemp --suffix .yaml)
printf 'extends: %s\ndevice: cuda\n' "$(pwd)/configs/default.yaml" > "$cfg"
"$PY" bench/bench_loop.py --scale mer2024 --rounds 3 --config "$cfg" --label "GPU: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" \
  --out "$OUT/loop_gpu.md" --json "$OUT/loop_gpu.json"
