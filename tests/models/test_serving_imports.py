"""Serving (the pipeline and what it loads lazily for Stage 1 and Stage 2) imports no training or evaluation code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVING = ["models.pipeline", "models.student", "models.student.model", "models.commerce_head", "filters.prefilter"]


def test_serving_imports_nothing_from_training_or_evaluation():
    code = (
        "import importlib, json, sys\n"
        f"for name in {SERVING!r}:\n"
        "    importlib.import_module(name)\n"
        "from models.student import Student\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('models.training', 'models.evaluation')))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_student_package_resolves_serving_names_only():
    import models.student as student

    assert student.Student.__module__ == "models.student.model"
    assert student.StudentConfig.__module__ == "models.student.config"
    with pytest.raises(AttributeError, match="has no attribute 'train_student'"):
        _ = student.train_student  # the trainer is models.training.student, never reached through serving
