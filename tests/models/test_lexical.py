"""Lexical tier heads: hashed TF-IDF equal to sklearn's convention, logits through float16 storage."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfTransformer

from models.lexical import N_FEATURES, LexicalHeads, fit_idf, term_counts, tfidf

TEXTS = ["Solar farm commissioned: 50 MW", "Council approves wind pilot", "Celebrity gossip, again and again",
         "The solar pilot cuts emissions per tonne"]


def test_tfidf_matches_sklearn_sublinear_smoothed_l2():
    counts = term_counts(TEXTS)
    assert counts.shape == (4, N_FEATURES)
    ours = tfidf(counts, fit_idf(counts)).toarray()
    ref = TfidfTransformer(sublinear_tf=True, smooth_idf=True, norm="l2").fit(counts).transform(counts).toarray()
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    assert np.linalg.norm(ours, axis=1) == pytest.approx([1.0] * 4)


def test_bigrams_count_and_case_is_ignored():
    a, b = term_counts(["Solar pilot"]), term_counts(["solar PILOT"])
    assert (a != b).nnz == 0 and a.sum() == 3  # solar, pilot, "solar pilot"


def test_logits_survive_the_float16_round_trip():
    counts = term_counts(TEXTS)
    rng = np.random.default_rng(0)
    heads = LexicalHeads(fit_idf(counts), rng.normal(size=(2, N_FEATURES)).astype(np.float32), np.array([0.5, -1.0]))
    again = LexicalHeads.from_tensors(heads.tensors())
    assert again is not None and again.tensors()["lexical_coef"].dtype == np.float16
    np.testing.assert_allclose(again.logits(TEXTS), heads.logits(TEXTS), atol=2e-2)
    assert LexicalHeads.from_tensors({"coef": np.zeros(1)}) is None
