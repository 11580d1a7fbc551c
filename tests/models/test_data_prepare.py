"""`data prepare` and `data merge` on synthetic label rows written for the tests."""

from __future__ import annotations

import json
import random

import pytest

from models.data.dedupe import find_duplicates
from models.data.merge import merge
from models.data.prepare import PrepareConfig, PrepareError, prepare
from models.data.report import render
from models.data.rows import normalize_url

TOPICS = ["solar", "wind", "grid", "storage", "policy", "carbon", "market", "pilot", "study", "battery", "heat",
          "steel", "cement", "hydrogen", "finance", "city", "farm", "ocean", "river", "forest"]


def _row(i: int, scores: dict | None = None, **kw) -> dict:
    rng = random.Random(i)
    words = rng.sample(TOPICS, 6)
    row = {
        "id": f"r{i}", "title": f"Item {i} on {' '.join(words)}", "text": f"Synthetic body {i}: " + " ".join(words),
        "url": f"https://example.org/a/{i}", "source": "test", "filter": "tiny", "filter_version": 1,
        "oracle": "fake:model", "prompt_hash": "abcdefabcdef", "analyzed_at": "2026-01-01T00:00:00Z",
        "scores": scores or {"impact": float(i % 9), "evidence": float((i * 3 + 1) % 10),
                             "reach": float((i * 7 + 2) % 10)},
        "content_type": None,
    }
    row.update(kw)
    return row


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_prepare_validates_dedupes_and_splits(tiny_spec, tmp_path):
    rows = [_row(i) for i in range(40)]
    rows += [
        _row(100, scores={"impact": 5.0, "evidence": 11.0, "reach": 1.0}),  # out of range
        _row(101, scores={"impact": 5.0, "evidence": 1.0}),  # missing dimension
        _row(102, text="   "),  # empty text
        _row(103, scores={"impact": 4.0, "evidence": 4.0, "reach": 4.0}),  # degenerate
        _row(104, scores={"impact": 0.0, "evidence": 0.0, "reach": 0.0}),  # all zero: a real "off topic" label
        _row(105, id=""),  # missing id
        _row(106, filter="other"),
        _row(107, url="https://www.example.org/a/3/?utm_source=rss"),  # same URL as r3
        _row(108, title=rows[4]["title"], text=rows[4]["text"], url=""),  # same content as r4
        _row(109, title=rows[5]["title"] + " - Site Name", url=""),  # near-duplicate title of r5
    ]
    src = _write(tmp_path / "labels.jsonl", rows)
    report = prepare(tiny_spec, src, tmp_path / "out")
    assert report["rows_in"] == 50
    assert report["dropped"] == {"degenerate_all_equal": 1, "empty_text": 1, "missing_dimensions": 1,
                                 "missing_id": 1, "other_filter": 1, "out_of_range": 1}
    assert report["duplicates"] == {"content": 1, "title": 1, "url": 1}
    assert report["rows_kept"] == 41
    parts = {name: _lines(tmp_path / "out" / f"{name}.jsonl") for name in ("train", "val", "test")}
    ids = [r["id"] for part in parts.values() for r in part]
    assert sorted(ids) == sorted([f"r{i}" for i in range(40)] + ["r104"])
    assert (len(parts["train"]), len(parts["val"]), len(parts["test"])) == (32, 4, 5)  # sklearn rounds the holdout up
    row = parts["val"][0]
    assert row["provenance"]["split"] == "val" and row["provenance"]["seed"] == 42
    assert row["provenance"]["input"] == str(src) and len(row["provenance"]["input_sha256"]) == 64
    assert isinstance(row["provenance"]["line"], int)
    dropped = {d["id"]: d for d in _lines(tmp_path / "out" / "dropped.jsonl")}
    assert dropped["r107"] == {"id": "r107", "line": 48, "reason": "duplicate_url", "duplicate_of": "r3"}
    assert dropped["r109"]["reason"] == "duplicate_title"
    assert "text" not in dropped["r100"]  # ids and reasons only
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["labels"]["all_zero_rows"] == 1 and saved["splits"]["train"]["n"] == 32
    text = render(report)
    assert "duplicates removed: 3" in text and "kept 41 rows" in text


def test_prepare_is_deterministic_for_a_seed(tiny_spec, tmp_path):
    src = _write(tmp_path / "labels.jsonl", [_row(i) for i in range(30)])
    prepare(tiny_spec, src, tmp_path / "a")
    prepare(tiny_spec, src, tmp_path / "b")
    prepare(tiny_spec, src, tmp_path / "c", PrepareConfig(seed=7))
    ids = {d: [r["id"] for r in _lines(tmp_path / d / "test.jsonl")] for d in "abc"}
    assert ids["a"] == ids["b"] and ids["a"] != ids["c"]


def test_degenerate_policy_all_drops_zero_rows_too(tiny_spec, tmp_path):
    zero = {"impact": 0.0, "evidence": 0.0, "reach": 0.0}
    src = _write(tmp_path / "l.jsonl", [_row(i) for i in range(12)] + [_row(50, scores=zero)])
    assert prepare(tiny_spec, src, tmp_path / "o", PrepareConfig(degenerate="all"))["dropped"] == {
        "degenerate_all_equal": 1}
    assert prepare(tiny_spec, src, tmp_path / "p", PrepareConfig(degenerate="none"))["dropped"] == {}


def test_newest_label_wins_among_duplicates(tiny_spec, tmp_path):
    rows = [_row(i) for i in range(12)]
    newer = _row(0, analyzed_at="2026-02-01T00:00:00Z", scores={"impact": 9.0, "evidence": 9.0, "reach": 1.0})
    src = _write(tmp_path / "l.jsonl", [*rows, newer])
    prepare(tiny_spec, src, tmp_path / "o")
    kept = [r for n in ("train", "val", "test") for r in _lines(tmp_path / "o" / f"{n}.jsonl") if r["id"] == "r0"]
    assert len(kept) == 1 and kept[0]["scores"]["impact"] == 9.0


def test_too_few_rows_is_a_clear_error(tiny_spec, tmp_path):
    src = _write(tmp_path / "l.jsonl", [_row(i) for i in range(5)])
    with pytest.raises(PrepareError, match="only 5 usable rows .* needs at least 10"):
        prepare(tiny_spec, src, tmp_path / "o")


def test_short_titles_are_not_title_duplicates():
    rows = [{"id": "a", "title": "Weekly roundup", "text": "x"}, {"id": "b", "title": "Weekly roundup", "text": "y"}]
    assert find_duplicates(rows) == {}


def test_url_normalisation():
    assert normalize_url("https://www.Example.org/a/b/?utm_medium=rss&x=1#top") == "//example.org/a/b?x=1"


def test_merge_keeps_newest_label_per_article(tmp_path):
    old = [_row(1, analyzed_at="2026-01-01T00:00:00Z"), _row(2, analyzed_at="2026-01-05T00:00:00Z")]
    new = [_row(1, analyzed_at="2026-03-01T00:00:00Z", content_type="fresh"),
           _row(2, analyzed_at="2026-01-02T00:00:00Z", content_type="stale"), _row(3)]
    a, b = _write(tmp_path / "a.jsonl", old), _write(tmp_path / "b.jsonl", new)
    stats = merge([a, b], tmp_path / "m.jsonl")
    merged = {r["id"]: r for r in _lines(tmp_path / "m.jsonl")}
    assert sorted(merged) == ["r1", "r2", "r3"]
    assert merged["r1"]["content_type"] == "fresh" and merged["r2"]["content_type"] is None
    assert stats["rows_out"] == 3 and stats["superseded"] == 2


def test_merge_refuses_mixed_filters_without_filter_option(tmp_path):
    a = _write(tmp_path / "a.jsonl", [_row(1)])
    b = _write(tmp_path / "b.jsonl", [_row(2, filter="other")])
    with pytest.raises(ValueError, match="several filters .* pass --filter NAME"):
        merge([a, b], tmp_path / "m.jsonl")
    assert merge([a, b], tmp_path / "m.jsonl", filter_name="tiny")["skipped_other_filter"] == 1


def test_data_commands(tiny_spec_data, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from distillery.cli import app
    spec_path = tmp_path / "tiny" / "v1" / "filter.yaml"
    spec_path.parent.mkdir(parents=True)
    spec_path.write_text(yaml.safe_dump(tiny_spec_data))
    a = _write(tmp_path / "a.jsonl", [_row(i) for i in range(15)])
    b = _write(tmp_path / "b.jsonl", [_row(i, analyzed_at="2026-05-01T00:00:00Z") for i in range(10, 20)])
    merged = tmp_path / "m.jsonl"
    res = CliRunner().invoke(app, ["data", "merge", str(a), str(b), "--output", str(merged)])
    assert res.exit_code == 0, res.output
    assert "merged 25 rows from 2 files -> 20 rows (5 older labels superseded)" in res.output
    res = CliRunner().invoke(app, ["data", "prepare", "--filter", str(spec_path), "--input", str(merged),
                                   "--out", str(tmp_path / "splits")])
    assert res.exit_code == 0, res.output
    assert "kept 20 rows" in res.output and (tmp_path / "splits" / "train.jsonl").exists()
    bad = CliRunner().invoke(app, ["data", "prepare", "--filter", str(spec_path), "--input",
                                   str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "missing.jsonl: no such file" in bad.output


def test_all_jsonl_reproduces_the_split_training_computes(tiny_spec, tmp_path):
    from models.training.data import load_dataset
    from models.training.split import split_dataset

    src = _write(tmp_path / "l.jsonl", [_row(i) for i in range(30)] + [_row(7, analyzed_at="2026-03-01T00:00:00Z")])
    prepare(tiny_spec, src, tmp_path / "o")
    data = load_dataset(tmp_path / "o" / "all.jsonl", tiny_spec)
    split = split_dataset(data, tiny_spec.weights, seed=42)
    for name in ("train", "val", "test"):
        mine = sorted(r["id"] for r in _lines(tmp_path / "o" / f"{name}.jsonl"))
        assert sorted(data.ids[i] for i in getattr(split, name)) == mine
