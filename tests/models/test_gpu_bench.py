"""bench/gpu_student.py runs end to end on CPU with --tiny and writes its figures as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_bench_tiny_runs_end_to_end_and_writes_json(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_student.py"), "--tiny", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = list(tmp_path.glob("gpu_student_tiny-*.json"))
    assert len(files) == 1, proc.stdout
    report = json.loads(files[0].read_text())
    assert report["tokens"] == 64 and report["lora"]["merged_for_inference"] is True
    assert [r["batch_size"] for r in report["inference"]] == [1, 2, 4]
    assert all(r["articles_per_s"] > 0 for r in report["inference"])
    check = report["correctness"]
    assert check["merge_max_abs_diff"] < 1e-4  # merged LoRA = unmerged LoRA
    assert check["padding_max_abs_diff"] < 1e-4  # right padding does not move last-token pooling
    assert check["bf16_vs_fp32_correlation"] > 0.99 and check["ok"] is True
    assert "articles/s" in proc.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="only meaningful without a GPU")
def test_gpu_bench_without_gpu_and_without_tiny_says_what_to_do(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_student.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert proc.returncode != 0
    assert "no CUDA GPU" in proc.stderr and "--tiny" in proc.stderr
