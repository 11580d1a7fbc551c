"""The tier model fitted by `train-step tiers` on the tiny filter and served through the pipeline; result flags."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from model_helpers import GOOD, FakeStudent

from models.filter_models import FilterModels
from models.pipeline import Pipeline
from models.records import Prepared, Result, Stage2Request
from models.tiers import TIERS_JSON, TierModel
from models.training.steps import TrainRun
from models.training.tiers import PR_JSON, PR_PNG


def article(i: int, good: int, filler: int = 3) -> dict:
    words = GOOD[:good] + ["market", "city", "people", "report"] * filler
    return {"id": f"t{i}", "title": f"Title {i}", "content": " ".join(words * 2), "url": f"https://news.example/{i}"}


@pytest.fixture(scope="module")
def tiered(trained, fake_encoder, tmp_path_factory):
    """A copy of the tiny trained filter plus its tier model (the session fixture's artifacts stay untouched)."""
    spec, data, run = trained
    root = tmp_path_factory.mktemp("tiered")
    out, work = root / "artifacts", root / "work"
    shutil.copytree(run.out_dir, out)
    shutil.copytree(run.workdir, work)
    tier_run = TrainRun(spec, data, out, encoder=fake_encoder, options=run.options, workdir=work)
    metrics = tier_run.step_tiers()
    return spec, out, metrics


def test_step_writes_the_model_curve_and_manifest_entries(tiered, fake_encoder):
    spec, out, metrics = tiered
    import json

    for name in (TIERS_JSON, "tiers.safetensors", PR_JSON, PR_PNG):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert {TIERS_JSON, "tiers.safetensors", PR_JSON, PR_PNG} <= set(manifest["files"])
    assert manifest["metrics"]["tiers"]["policy"] == spec.tier_model.policy
    model = TierModel.load(out, spec.tier_names)
    assert model is not None and model.edges == [7.0, 4.0]
    assert set(model.operating_points) == {"recall", "balanced", "precision"}
    assert metrics["selection"]["split"] == "val"
    curve = json.loads((out / PR_JSON).read_text())
    assert curve["edge"] == spec.protected_threshold and len(curve["val"]) == 101
    meta = json.loads((out / TIERS_JSON).read_text())
    assert meta["lexical"] == {"n_features": 2**17, "ngrams": [1, 2], "text": "Encoder.texts"}
    assert model.lexical is not None and model.lexical.coef.shape == (2, 2**17)
    assert model.coef.shape[1] == meta["n_features"] == metrics["n_features"]
    # the inputs (with or without the embedding) and C were chosen by out-of-fold needle AP over both variants
    tried = metrics["selection_oof_ap"]
    assert len(tried) == 6 and sum(k.startswith("embedding+") for k in tried) == 3
    chosen = f"{'embedding+' if model.embedding_features else ''}probe+knn+lexical C={metrics['c']}"
    assert tried[chosen] == max(tried.values())
    assert meta["embedding_features"] is model.embedding_features is metrics["embedding_features"]
    # (embedding), probe scores + WA, kNN statistics (when the router has a bank), one lexical logit per edge
    emb_dim = fake_encoder.encode([article(1, 1)]).shape[1] if model.embedding_features else 0
    assert meta["n_features"] == emb_dim + len(spec.dimension_names) + 1 + (8 if model.uses_knn else 0) + 2


def test_a_lexical_tier_model_refuses_features_without_texts(tiered, fake_encoder):
    from models.tiers import TierModelError

    spec, out, _ = tiered
    fm = FilterModels.load(spec, fake_encoder, directory=out)
    emb = fake_encoder.encode([article(1, 2)])
    scores = fm.probe.predict(emb, [article(1, 2)])
    r = fm.router
    with pytest.raises(TierModelError, match="needs each article's recipe text"):
        fm.tiers.features(fm.probe.standardise(emb), scores, spec.weights, emb, r.bank, r.bank_wa,
                          r.protected_threshold)


def test_served_tier_comes_from_the_tier_model(tiered, fake_encoder):
    spec, out, _ = tiered
    fm = FilterModels.load(spec, fake_encoder, directory=out)
    assert fm.tiers is not None
    pipe = Pipeline(fake_encoder, {spec.name: fm}, None)
    prepared = [p for p in pipe.prepare([article(1, 0), article(2, len(GOOD)), article(3, 4)])
                if isinstance(p, Prepared)]
    results = [r for r in pipe.route(prepared, spec.name) if isinstance(r, Result)]
    assert len(results) == 3
    emb = np.stack([p.embedding for p in prepared])
    scores, _ = pipe.probe_scores(spec.name, emb, [p.article for p in prepared])
    logits = pipe._tier_logits(fm, emb, scores, [p.article for p in prepared])
    expected = fm.tiers.decide(fm.tiers.probabilities(logits), spec.tier_model.policy,
                               np.array([r.weighted_average for r in results]))
    for r, (tier, confidence) in zip(results, expected, strict=True):
        assert r.tier_source == "tier_model"
        assert r.tier == tier and r.tier_confidence == pytest.approx(confidence)
        assert 0.0 <= r.tier_confidence <= 1.0
    assert results[0].tier == spec.tier_names[-1]  # no good words: the lowest tier
    assert results[1].tier != spec.tier_names[-1]  # every good word: a needle


def test_stage2_refines_with_the_tier_logits_carried_by_the_request(tiered, fake_encoder):
    spec, out, _ = tiered
    fm = FilterModels.load(spec, fake_encoder, directory=out)
    fm.student = FakeStudent(spec.dimension_names, offset=0.3)
    pipe = Pipeline(fake_encoder, {spec.name: fm}, None)
    prepared = [p for p in pipe.prepare([article(4, len(GOOD))]) if isinstance(p, Prepared)]
    routed = pipe.route(prepared, spec.name)
    assert isinstance(routed[0], Stage2Request)
    assert routed[0].tier_logits is not None and len(routed[0].tier_logits) == len(fm.tiers.edges)
    result = pipe.stage2(routed)[0]
    raw_wa = sum(result.scores[d.name] * d.weight for d in spec.dimensions)
    tier, confidence = fm.tiers.serve(routed[0].tier_logits, raw_wa, result.weighted_average,
                                      spec.tier_model.policy)
    assert (result.stage, result.tier_source, result.tier) == ("stage2", "tier_model", tier)
    assert result.tier_confidence == pytest.approx(confidence)


def test_without_a_tier_model_the_postfilter_tier_is_served(pipeline_without_tiers):
    pipe, spec = pipeline_without_tiers
    prepared = [p for p in pipe.prepare([article(5, 2)]) if isinstance(p, Prepared)]
    result = pipe.route(prepared, spec.name)[0]
    assert (result.tier_source, result.tier_confidence) == ("postfilter", None)


def test_short_content_is_scored_and_flagged(pipeline_without_tiers):
    pipe, spec = pipeline_without_tiers
    short, long = article(6, 2, filler=1), article(7, 2, filler=40)
    assert len(short["content"]) < 300 <= len(long["content"])
    prepared = [p for p in pipe.prepare([short, long]) if isinstance(p, Prepared)]
    out = pipe.route(prepared, spec.name)
    assert [(r.stage, r.flags) for r in out] == [("stage1", ["short_content"]), ("stage1", [])]
    assert out[0].as_dict()["flags"] == ["short_content"]


@pytest.fixture
def pipeline_without_tiers(trained, fake_encoder):
    spec, _, run = trained
    fm = FilterModels.load(spec, fake_encoder, directory=run.out_dir)
    assert fm.tiers is None
    return Pipeline(fake_encoder, {spec.name: fm}, None), spec


def test_training_part_is_the_artifacts_split_and_refuses_another_file(trained, tmp_path):
    from models.training.data import DataError, load_dataset
    from models.training.split import training_part

    spec, data, run = trained
    test = training_part(load_dataset(data, spec), spec, "test")
    assert test.ids == [run.data.ids[i] for i in run.split.test]
    other = tmp_path / "other.jsonl"
    other.write_text(data.read_text().splitlines()[0] + "\n")
    with pytest.raises(DataError, match="is not the file tinyfilter/v1 was trained on .* use --split all"):
        training_part(load_dataset(other, spec), spec, "test")
    with pytest.raises(DataError, match="unknown split part 'holdout'"):
        training_part(load_dataset(data, spec), spec, "holdout")


def test_system_report_counts_blocked_articles_at_their_served_score(trained, fake_encoder):
    """evaluate_system over the tiny split: every article accounted for, misses by fate, per-language groups."""
    from models.evaluation.system import evaluate_system, to_markdown

    spec, _, run = trained
    fm = FilterModels.load(spec, fake_encoder, directory=run.out_dir)
    test = run.data.subset(run.split.test)
    test.articles[0] = {**test.articles[0], "url": "https://blocked.example/x"}  # the tiny prefilter blocks it
    report = evaluate_system(Pipeline(fake_encoder, {spec.name: fm}, None), spec.name, test, n_boot=20)
    assert report["n"] == len(test) and sum(report["fates"].values()) == len(test)
    assert report["fates"]["prefilter:excluded_domain_blocked"] == 1
    assert sum(report["served_tiers"].values()) == len(test)
    assert report["needle_tiers"] == ["high", "medium"] and report["needles"]["support"] == sum(
        report["oracle_tiers"][t] for t in ("high", "medium"))
    assert sum(report["misses"].values()) == report["needles"]["fn"]
    assert sum(report["false_positives_by_oracle_wa"].values()) == report["needles"]["fp"]
    assert list(report["false_positives_by_oracle_wa"]) == ["3.5-4", "3-3.5", "2-3", "<2"]  # needle edge 4.0
    assert set(report["needles"]["ci95"]) == {"precision", "recall", "f1", "wa_mae"}
    assert report["by_language"]["unknown"]["n"] == len(test)
    short = report["flags"].get("short_content", 0)
    assert report["by_language_not_short"].get("unknown", {"n": 0})["n"] == len(test) - short
    assert "System WA MAE" in to_markdown(report) and "language not short" in to_markdown(report)


def test_a_step_from_a_fresh_work_dir_keeps_the_shipped_metrics(trained, fake_encoder, tmp_path):
    """A step re-run on another machine (empty work dir) must not drop the earlier steps' metrics from the
    manifest it rewrites."""
    import json

    spec, data, run = trained
    out = tmp_path / "artifacts"
    shutil.copytree(run.out_dir, out)
    before = json.loads((out / "manifest.json").read_text())["metrics"]
    assert {"split", "probe"} <= set(before)
    fresh = TrainRun(spec, data, out, encoder=fake_encoder, options=run.options, workdir=tmp_path / "empty")
    fresh.write_manifest()
    after = json.loads((out / "manifest.json").read_text())["metrics"]
    assert after["probe"] == before["probe"] and after["split"] == before["split"]
    partial = tmp_path / "partial"  # a work dir that ran only the split step
    partial.mkdir()
    (partial / "metrics.json").write_text(json.dumps({"split": {"old": True}}))
    again = TrainRun(spec, data, out, encoder=fake_encoder, options=run.options, workdir=partial)
    again.write_manifest()
    after = json.loads((out / "manifest.json").read_text())["metrics"]
    assert after["probe"] == before["probe"] and after["split"] == before["split"]
