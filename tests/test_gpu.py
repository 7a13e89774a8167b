"""The CUDA path: a round on the GPU (features on the device, bf16 autocast), the exact
neighbour graph on the device, a saved ensemble scored on the GPU, folds in several processes
with NCCL. Marked `gpu`: not part of `make test` (CI has no GPU); bench/gpu_check.sh runs them on
a machine with one, and `pytest -m gpu` without one fails at once, saying so."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from app_fixtures import FAST_PRESET, synthetic_project
from mersemi.engine.config import load_config
from mersemi.engine.propagation import knn_graph
from mersemi.engine.train import TrainSet, predict, train_round

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def cuda():
    if not torch.cuda.is_available():
        pytest.fail("no CUDA device: the tests marked gpu need one (bench/gpu_check.sh runs them on a GPU machine)")


def test_a_round_trains_on_the_gpu_and_its_ensemble_scores_there_as_saved():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 200)
    feats = {m: (rng.normal(0, 2, (3, d))[y] + rng.normal(0, 1, (len(y), d))).astype(np.float16)
             for m, d in (("a", 64), ("b", 32))}
    gold = np.r_[0:30, 200:230, 400:430]
    rest = np.setdiff1d(np.arange(len(y)), gold)
    cfg = load_config(FAST_PRESET).replace(**{"device": "cuda"})
    r = train_round(TrainSet(features=feats, gold_rows=gold, gold_labels=y[gold], extra_rows=np.zeros(0, np.int64),
                             extra_labels=np.zeros(0, np.int64), pretrain_rows=np.arange(len(y)), pool_rows=rest),
                    3, cfg)
    assert r.metrics.work.device.startswith("cuda") and r.metrics.cv.waf > 0.8
    assert (r.scores.pool.argmax(1) == y[rest]).mean() > 0.8
    again = predict(r.checkpoint, feats, rest, cfg)
    assert np.abs(again - predict(r.checkpoint, feats, rest, cfg.replace(**{"device": "cpu"}))).max() < 0.05


def test_the_exact_graph_on_the_gpu_is_the_cpu_one():
    x = np.random.default_rng(1).normal(size=(5000, 96)).astype(np.float32)
    gpu, how = knn_graph(torch.as_tensor(x).cuda(), 7, "auto")
    cpu, _ = knn_graph(x, 7, "exact")
    assert how.endswith("exact") and ((gpu > 0) != (cpu > 0)).nnz == 0


def test_a_round_across_two_gpus_when_there_are_two(tmp_path):
    if torch.cuda.device_count() < 2:
        pytest.skip("one GPU: the NCCL round needs two")
    synthetic_project(tmp_path / "p", tmp_path / "data", scale=0.05).close()
    out = subprocess.run([sys.executable, "-m", "mersemi.ui.cli", "train", str(tmp_path / "p"), "--config",
                          str(FAST_PRESET), "--json", "--nproc", "2"], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, GRADIO_ANALYTICS_ENABLED="False"))
    assert out.returncode == 0, out.stderr
    assert json.loads([l for l in out.stdout.splitlines() if l.startswith("{")][-1])["status"] == "done"
