"""Which Stage-2 student a worker serves: Gemma on CUDA, MiniLM on CPU, unless configured.

A filter's artifacts may hold several trained students side by side (`artifacts/student/` = MiniLM, the CPU
student; `artifacts/student-gemma/` = Gemma-3-270M + LoRA, a GPU student at ~1.5 articles/s on two CPU cores).
`choose_student` is the pure decision; `student_dir` applies it to a folder. Setting: `DISTILLERY_STUDENT` (read by the
worker's settings tree, `streams/settings.py`, and passed in as `preference`)
(`auto`, the default, or a student name such as `gemma` / `minilm`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from pathlib import Path

from models.errors import ModelsError

log = logging.getLogger(__name__)

STUDENT_ENV = "DISTILLERY_STUDENT"
AUTO = "auto"
STUDENT_DIRS = {"minilm": "student", "gemma": "student-gemma"}  # name -> folder under a filter's artifacts/
GPU_ORDER = ("gemma", "minilm")
CPU_ORDER = ("minilm",)  # Gemma on CPU only when asked for by name: too slow for a stream (docs/student.md)


class StudentChoiceError(ModelsError, ValueError):
    """The configured student is not among the trained ones; the message names both and the fix."""


def is_gpu(device: str | None) -> bool:
    """True for a CUDA device string; None/"" means "GPU when present" (torch decides)."""
    if device:
        return device.startswith("cuda")
    try:
        import torch  # lazy: torch: seconds to import

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover - torch is a core dependency
        return False


def choose_student(available: Iterable[str], gpu: bool, preference: str = AUTO) -> str | None:
    """The student to serve among the trained `available` names, for a GPU or CPU worker.

    `preference` names one (error if it is not trained) or is `auto`: Gemma on a GPU, else MiniLM; None when no
    suitable student exists (the worker then serves probe scores, as without a student).
    """
    names = set(available)
    preference = (preference or AUTO).lower()
    if preference != AUTO:
        if preference not in names:
            raise StudentChoiceError(
                f"{STUDENT_ENV}={preference!r} but the trained students are {sorted(names) or 'none'}; "
                f"train it or set {STUDENT_ENV}=auto"
            )
        return preference
    for name in GPU_ORDER if gpu else CPU_ORDER:
        if name in names:
            return name
    return None


def trained_students(artifacts: Path, listed: Collection[str] | None = None) -> list[str]:
    """Names of the students with a `student.json` under a filter's artifacts folder; with `listed` (the manifest's
    checksummed files) only those the manifest covers — an adapter dropped in by hand is never served unverified."""
    names = [name for name, sub in STUDENT_DIRS.items() if (artifacts / sub / "student.json").is_file()]
    if listed is None:
        return names
    unlisted = [n for n in names if f"{STUDENT_DIRS[n]}/student.json" not in listed]
    if unlisted:
        log.warning("%s: students %s are not in the manifest and are not served; train them with the filter",
                    artifacts, unlisted)
    return [n for n in names if n not in unlisted]


def student_dir(artifacts: Path, device: str | None = None, preference: str | None = None,
                listed: Collection[str] | None = None) -> tuple[str, Path] | None:
    """(name, folder) of the student this worker serves for one filter, or None (preference: a name, else auto)."""
    pref = preference or AUTO
    name = choose_student(trained_students(artifacts, listed), is_gpu(device), pref)
    return (name, artifacts / STUDENT_DIRS[name]) if name else None
