"""Routers in one artifacts directory share one kNN bank file instead of each carrying its own copy; the bank is
stored as int8 codes with a row scale (what fitting already used), and older float16 bank files still load."""

from __future__ import annotations

import numpy as np
from safetensors.numpy import load_file, save_file

from models.router import BANK_STEM, Router, normalise, quantise_bank


def _bank(rng: np.random.Generator) -> np.ndarray:
    return quantise_bank(normalise(rng.normal(size=(50, 8))))


def test_routers_with_a_bank_share_one_file_and_load_equal(tmp_path):
    rng = np.random.default_rng(0)
    bank = _bank(rng)
    bank_wa = rng.uniform(0, 10, size=50).astype(np.float16)
    coef = rng.normal(size=12).astype(np.float32)
    knn = Router("knn_classifier", 0.3, 5.0, coef, -1.0, bank=bank, bank_wa=bank_wa)
    ens = Router("ensemble", 0.4, 5.0, coef, 0.5, bank=bank, bank_wa=bank_wa,
                 cdf_p=np.linspace(0, 1, 5), cdf_knn=np.linspace(0, 10, 5))
    knn.save(tmp_path, "router")
    ens.save(tmp_path, "router_ensemble")

    assert {p.name for p in tmp_path.glob("*.safetensors")} == {
        f"{BANK_STEM}.safetensors", "router.safetensors", "router_ensemble.safetensors"}
    stored = load_file(str(tmp_path / f"{BANK_STEM}.safetensors"))
    assert stored["bank_q"].dtype == np.int8 and stored["bank_q"].shape == (50, 8)
    top = np.abs(stored["bank_q"]).max(axis=1)
    assert top.min() >= 64 and top.max() <= 127  # power-of-two scales: each row uses at least half the int8 range
    for stem, original in (("router", knn), ("router_ensemble", ens)):
        loaded = Router.load(tmp_path, stem)
        assert (loaded.kind, loaded.threshold, loaded.intercept) == (original.kind, original.threshold,
                                                                     original.intercept)
        assert loaded.bank.dtype == np.float16 and np.array_equal(loaded.bank_wa, bank_wa)
        assert np.array_equal(loaded.bank, bank)  # what serving loads is exactly what fitting used


def test_quantised_bank_is_close_to_the_embeddings():
    emb = normalise(np.random.default_rng(1).normal(size=(200, 512)))
    q = quantise_bank(emb).astype(np.float32)
    step = 2 * np.abs(emb).max(axis=1, keepdims=True) / 127  # power-of-two scale: at most twice the tight step
    assert np.all(np.abs(q - emb) <= step / 2 + 1e-3 * np.abs(emb) + 1e-6)
    assert np.array_equal(quantise_bank(q), q.astype(np.float16))  # idempotent: the saved bank reloads unchanged
    sims, sims_q = emb[:20] @ emb.T, emb[:20] @ q.T
    assert np.abs(sims - sims_q).max() < 5e-3
    assert np.array_equal(sims.argsort(1)[:, -10:][:, ::-1][:, 0], sims_q.argsort(1)[:, -10:][:, ::-1][:, 0])


def test_a_float16_bank_written_before_int8_still_loads(tmp_path):
    rng = np.random.default_rng(2)
    bank = normalise(rng.normal(size=(30, 8))).astype(np.float16)
    bank_wa = rng.uniform(0, 10, size=30).astype(np.float16)
    Router("knn_classifier", 0.3, 5.0, rng.normal(size=12).astype(np.float32), -1.0, bank=bank,
           bank_wa=bank_wa).save(tmp_path)
    save_file({"bank": bank, "bank_wa": bank_wa}, str(tmp_path / f"{BANK_STEM}.safetensors"))  # the old format
    loaded = Router.load(tmp_path)
    assert np.array_equal(loaded.bank, bank) and np.array_equal(loaded.bank_wa, bank_wa)
