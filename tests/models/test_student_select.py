"""The Stage-2 worker's student choice: Gemma on CUDA, MiniLM on CPU, or what DISTILLERY_STUDENT names."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.student_select import StudentChoiceError, choose_student, student_dir, trained_students


@pytest.mark.parametrize(("available", "gpu", "expected"), [
    (["minilm", "gemma"], True, "gemma"),
    (["minilm", "gemma"], False, "minilm"),
    (["minilm"], True, "minilm"),
    (["gemma"], False, None),  # Gemma on CPU only when named: ~1.5 articles/s
    ([], True, None),
])
def test_auto_picks_by_device(available: list[str], gpu: bool, expected: str | None) -> None:
    assert choose_student(available, gpu) == expected


def test_a_named_student_wins_over_the_device() -> None:
    assert choose_student(["minilm", "gemma"], gpu=False, preference="gemma") == "gemma"
    assert choose_student(["minilm", "gemma"], gpu=True, preference="MiniLM") == "minilm"


def test_a_named_student_that_is_not_trained_is_an_error_naming_both() -> None:
    expected = r"DISTILLERY_STUDENT='gemma' but the trained students are \[.minilm.\]"
    with pytest.raises(StudentChoiceError, match=expected):
        choose_student(["minilm"], gpu=True, preference="gemma")


def test_student_dir_reads_the_artifacts_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for sub in ("student", "student-gemma"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "student.json").write_text("{}")
    (tmp_path / "student-other").mkdir()
    assert trained_students(tmp_path) == ["minilm", "gemma"]
    monkeypatch.delenv("DISTILLERY_STUDENT", raising=False)
    assert student_dir(tmp_path, device="cuda:0") == ("gemma", tmp_path / "student-gemma")
    assert student_dir(tmp_path, device="cpu") == ("minilm", tmp_path / "student")
    monkeypatch.setenv("DISTILLERY_STUDENT", "gemma")
    assert student_dir(tmp_path, device="cpu") == ("gemma", tmp_path / "student-gemma")
    assert student_dir(tmp_path / "nothing", device="cpu", preference="auto") is None


def test_students_outside_the_manifest_are_not_served(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for sub in ("student", "student-gemma"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "student.json").write_text("{}")
    listed = {"student/student.json": "sha", "probe.json": "sha"}
    assert trained_students(tmp_path, listed) == ["minilm"]
    assert "['gemma'] are not in the manifest" in caplog.text
    assert student_dir(tmp_path, device="cuda", preference="auto", listed=listed) == ("minilm", tmp_path / "student")
