"""The filters CLI: list, show, validate and prefilter evaluate, run through the root `distillery` app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from distillery.cli import app
from filters import prefilter_eval

runner = CliRunner()
NEWS = "The regional water board said the new treatment plant had cut nitrate levels in the river by a third. " * 4


def invoke(*args: str):
    return runner.invoke(app, list(args))


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def spec_file(tiny_spec_data, tmp_path) -> Path:
    data = {
        **tiny_spec_data,
        "prefilter": {
            "min_content_length": 200,
            "exclusions": [{"category": "celebrity", "patterns": [r"\bred carpet\b"]}],
        },
    }
    path = tmp_path / "tiny" / "v1" / "filter.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_list_shows_every_shipped_spec_with_artifact_status():
    from filters.spec import spec_paths

    result = invoke("filters", "list")
    assert result.exit_code == 0, result.output
    for path in spec_paths():
        assert path.parent.parent.name in result.output
    assert "trained" in result.output


def test_show_prints_dimensions_weights_gatekeepers_and_prefilter(spec_file):
    result = invoke("filters", "show", str(spec_file))
    assert result.exit_code == 0, result.output
    expected = ("tiny/v1", "impact", "0.5", "evidence", "gatekeepers", "medium", "greenwashing", "celebrity", "hybrid")
    for text in expected:
        assert text in result.output


def test_show_unknown_filter_is_a_clear_error():
    result = invoke("filters", "show", "no_such_filter")
    assert result.exit_code == 2
    assert "unknown filter 'no_such_filter'" in result.output


def test_validate_every_shipped_spec_passes():
    result = invoke("filters", "validate")
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.output
    assert "rules.yaml (commerce rules" in result.output


def test_validate_reports_weight_sum_and_exits_1(spec_file, tiny_spec_data, tmp_path):
    bad = tmp_path / "bad" / "v1" / "filter.yaml"
    bad.parent.mkdir(parents=True)
    data = {**tiny_spec_data, "dimensions": [{**d} for d in tiny_spec_data["dimensions"]]}
    data["dimensions"][0]["weight"] = 0.4  # 0.4 + 0.3 + 0.2 = 0.9
    bad.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = invoke("filters", "validate", str(spec_file.parent), str(bad))
    assert result.exit_code == 1
    assert f"OK   {spec_file}" in result.output
    assert f"FAIL {bad}" in result.output
    assert "sum to 0.9" in result.output
    assert "1 ok, 1 failed" in result.output


def test_validate_reports_a_bad_prefilter_regex(tiny_spec_data, tmp_path):
    bad = tmp_path / "f.yaml"
    bad.write_text(yaml.safe_dump({**tiny_spec_data, "prefilter": {"override_keywords": ["(open"]}}))
    result = invoke("filters", "validate", str(bad))
    assert result.exit_code == 1
    assert "override_keywords[0] '(open' is not a valid regular expression" in result.output


def test_evaluate_spec_prefilter_with_report(spec_file, tmp_path):
    rows = [
        {"title": "New wetland restored", "text": NEWS, "expected": "pass"},
        {"title": "Stars on the red carpet", "text": NEWS, "expected": "block"},
        {"title": "Too short", "text": "tiny", "expected": "block"},
        {"title": "Short but fine", "text": "a short note", "expected": "pass"},
        {"title": "Gala night", "text": "The red carpet event. " + NEWS, "expected": "pass"},
    ]
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    out = tmp_path / "report.json"
    result = invoke("prefilter", "evaluate", "--filter", str(spec_file), "--data", str(data), "--out", str(out))
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["filter"] == "tiny/v1"
    assert report["n"] == 5
    assert report["confusion"] == {"tp": 2, "fp": 2, "fn": 0, "tn": 1}
    assert report["precision_block"] == 0.5
    assert report["recall_block"] == 1.0
    assert report["block_rate_on_block"] == 1.0
    assert report["pass_rate_on_pass"] == pytest.approx(1 / 3, abs=1e-4)
    assert report["f1_block"] == pytest.approx(2 / 3, abs=1e-4)
    assert report["reasons"] == {"celebrity": 2, "content_too_short_200chars": 2, "passed": 1}
    assert report["reasons_by_expected"]["pass"] == {"passed": 1, "content_too_short_200chars": 1, "celebrity": 1}
    assert "f1_block" in result.output and "celebrity" in result.output

    ignored = invoke("prefilter", "evaluate", "--filter", str(spec_file), "--data", str(data), "--ignore-length",
                     "--out", str(out))
    assert ignored.exit_code == 0
    assert json.loads(out.read_text())["confusion"] == {"tp": 1, "fp": 1, "fn": 1, "tn": 2}


def test_evaluate_commerce_rules_only_with_labels(tmp_path):
    rows = [
        {"title": "Deals: robot vacuums and air fryers", "text": "", "label": 1, "language": "en"},
        {"title": "Speaker", "text": "Use code SAVE20NOW for an extra 20% discount.", "label": 1, "language": "en"},
        {"title": "Solar panel factory opens", "text": NEWS, "label": 0, "language": "en"},
        {"title": "Nova bicicleta elétrica", "text": NEWS, "label": 1, "language": "pt"},
    ]
    data = write_jsonl(tmp_path / "commerce.jsonl", rows)
    out = tmp_path / "c.json"
    result = invoke("prefilter", "evaluate", "--filter", "commerce", "--data", str(data), "--no-head", "--out",
                    str(out))
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["head"] is False and report["threshold"] is None
    assert report["confusion"] == {"tp": 2, "fp": 0, "fn": 1, "tn": 1}
    assert report["reasons"] == {"commerce:deal_title": 1, "commerce:coupon": 1, "passed": 2}
    assert report["f1_block"] == pytest.approx(0.8)
    assert report["by_language"]["en"]["f1_block"] == 1.0 and report["by_language"]["en"]["n"] == 3
    # undefined rates are null, not 0: there is no row to pass in Portuguese and nothing was blocked
    assert report["by_language"]["pt"] == {"n": 1, "n_expected_block": 1, "n_expected_pass": 0,
                                           "precision_block": None, "recall_block": 0.0, "f1_block": None,
                                           "pass_rate_on_pass": None}
    assert "per language" in result.output


def test_evaluate_rejects_rows_without_labels_and_missing_files(spec_file, tmp_path):
    data = write_jsonl(tmp_path / "rows.jsonl", [{"title": "x", "text": "y"}])
    result = invoke("prefilter", "evaluate", "--filter", str(spec_file), "--data", str(data))
    assert result.exit_code == 2
    assert f"{data}:1: row has neither `expected` (pass|block) nor `label`" in result.output
    missing = invoke("prefilter", "evaluate", "--filter", "commerce", "--data", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2 and "no such file; pass a JSONL file with title, text" in missing.output
    (tmp_path / "broken.jsonl").write_text('{"title": "x", "label": 1}\n{oops\n')
    broken = invoke("prefilter", "evaluate", "--filter", "commerce", "--data", str(tmp_path / "broken.jsonl"))
    assert broken.exit_code == 2 and "broken.jsonl:2: not valid JSON" in broken.output


def test_expected_block_accepts_both_label_styles():
    assert prefilter_eval.expected_block({"expected": "Block"}, "r") is True
    assert prefilter_eval.expected_block({"expected": "pass"}, "r") is False
    assert prefilter_eval.expected_block({"label": 1}, "r") is True
    assert prefilter_eval.expected_block({"label": 0.0}, "r") is False
    with pytest.raises(ValueError, match="'maybe' is not one of"):
        prefilter_eval.expected_block({"expected": "maybe"}, "r")


def test_summarise_groups_head_reasons():
    report = prefilter_eval.summarise([(True, True, "commerce_head:0.97"), (True, True, "commerce_head:0.91"),
                                    (False, False, "passed")])
    assert report["reasons"] == {"commerce_head": 2, "passed": 1}
    assert report["f1_block"] == 1.0


class FakeHead:
    """Stands in for models.commerce_head.CommerceHead: p = 0.95 for a non-zero embedding, else 0.1."""

    threshold = 0.9

    def __init__(self, data: Path):
        self.metrics = {"data": str(data)}

    def probabilities(self, embeddings):
        import numpy as np

        return np.where(np.abs(embeddings).sum(axis=1) > 0, 0.95, 0.1)


def test_evaluate_commerce_with_head_reports_head_threshold_and_in_sample_note(tmp_path, monkeypatch):
    import numpy as np

    import models.commerce_head as commerce_head
    from models.embedding import Encoder, default_model_id, hashing_encoder

    rows = [
        {"title": "Deals: robot vacuums", "text": "", "label": 1},
        {"title": "New e-bike unveiled", "text": "launch", "label": 1},
        {"title": "Solar panel factory opens", "text": NEWS, "label": 0},
    ]
    data = write_jsonl(tmp_path / "commerce.jsonl", rows)
    monkeypatch.setattr(commerce_head, "load_default", lambda: FakeHead(data))
    encoder = hashing_encoder(dimension=8, model_id=default_model_id())
    # zero embeddings except for the e-bike row, so only it gets p=0.95 from the fake head
    encoder.encode = lambda articles, batch_size=32, progress=False: np.array(  # type: ignore[method-assign]
        [[0.0] * 8, [1.0] * 8, [0.0] * 8], dtype=np.float32
    )
    Encoder.install(encoder)
    try:
        out = tmp_path / "c.json"
        result = invoke("prefilter", "evaluate", "--filter", "commerce", "--data", str(data), "--out", str(out))
    finally:
        Encoder.forget(default_model_id())
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["head"] is True and report["threshold"] == 0.9
    assert report["reasons"] == {"commerce:deal_title": 1, "commerce_head": 1, "passed": 1}
    assert report["f1_block"] == 1.0
    assert "in-sample" in report["head_note"]
