"""The Stage-2 worker's student choice: Gemma on CUDA, MiniLM on CPU, or what DISTILLERY_STUDENT names."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.student_select import StudentChoiceError, choose_student, student_dir, trained_students
from streams.settings import Settings


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


def test_student_dir_reads_the_artifacts_folder(tmp_path: Path) -> None:
    for sub in ("student", "student-gemma"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "student.json").write_text("{}")
    (tmp_path / "student-other").mkdir()
    assert trained_students(tmp_path) == ["minilm", "gemma"]
    assert student_dir(tmp_path, device="cuda:0") == ("gemma", tmp_path / "student-gemma")
    assert student_dir(tmp_path, device="cpu") == ("minilm", tmp_path / "student")
    preference = Settings.from_env({"DISTILLERY_STUDENT": "gemma"}).student  # the worker's settings tree
    assert student_dir(tmp_path, device="cpu", preference=preference) == ("gemma", tmp_path / "student-gemma")
    assert student_dir(tmp_path / "nothing", device="cpu", preference="auto") is None


def test_students_outside_the_manifest_are_not_served(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for sub in ("student", "student-gemma"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "student.json").write_text("{}")
    listed = {"student/student.json": "sha", "probe.json": "sha"}
    assert trained_students(tmp_path, listed) == ["minilm"]
    assert "['gemma'] are not in the manifest" in caplog.text
    assert student_dir(tmp_path, device="cuda", preference="auto", listed=listed) == ("minilm", tmp_path / "student")


class NamedStudent:
    """A fake Stage-2 student with the `name` FilterModels.load gives the chosen one."""

    name = "gemma"

    def predict(self, articles, batch_size: int = 16):  # type: ignore[no-untyped-def]
        import numpy as np

        return np.full((len(articles), 3), 6.0, dtype=np.float32)


def test_stage2_results_say_which_student_scored_them(tiny_spec_data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from filters.prefilter import Prefilter
    from filters.spec import parse_spec
    from models.calibration import Calibration
    from models.embedding import hashing_encoder
    from models.filter_models import FilterModels
    from models.pipeline import Pipeline
    from models.probe import MLP, Probe, ProbeConfig
    from models.router import Router

    spec = parse_spec(tiny_spec_data, tmp_path / "f" / "filter.yaml")
    probe = Probe(spec.dimension_names, spec.weights, np.zeros(8, np.float32), np.ones(8, np.float32),
                  [MLP(8, 3, (4,), 0.0)], ProbeConfig(hidden=(4,), dropout=0.0))
    fm = FilterModels(spec, probe, Router("wa_threshold", threshold=-1.0, protected_threshold=4.0),
                      Calibration.identity(spec.dimension_names), NamedStudent(), Prefilter.for_spec(spec))
    pipe = Pipeline(hashing_encoder(8), {spec.name: fm}, None, apply_prefilter=False)
    results, _ = pipe.score_batch([{"id": "a1", "title": "Solar", "text": "Solar panels on every school roof."}])
    assert [(r.stage, r.student) for r in results] == [("stage2", "gemma")]
    fm.student = None  # no student: Stage-1 scores, no student named
    results, _ = pipe.score_batch([{"id": "a2", "title": "Solar", "text": "Solar panels on every school roof."}])
    assert [(r.stage, r.student) for r in results] == [("stage1", "")]
