"""Routers in one artifacts directory share one kNN bank file instead of each carrying its own copy."""

from __future__ import annotations

import numpy as np

from models.router import BANK_STEM, Router


def test_routers_with_a_bank_share_one_file_and_load_equal(tmp_path):
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(50, 8)).astype(np.float16)
    bank_wa = rng.uniform(0, 10, size=50).astype(np.float16)
    coef = rng.normal(size=12).astype(np.float32)
    knn = Router("knn_classifier", 0.3, 5.0, coef, -1.0, bank=bank, bank_wa=bank_wa)
    ens = Router("ensemble", 0.4, 5.0, coef, 0.5, bank=bank, bank_wa=bank_wa,
                 cdf_p=np.linspace(0, 1, 5), cdf_knn=np.linspace(0, 10, 5))
    knn.save(tmp_path, "router")
    ens.save(tmp_path, "router_ensemble")

    assert {p.name for p in tmp_path.glob("*.safetensors")} == {
        f"{BANK_STEM}.safetensors", "router.safetensors", "router_ensemble.safetensors"}
    for stem, original in (("router", knn), ("router_ensemble", ens)):
        loaded = Router.load(tmp_path, stem)
        assert (loaded.kind, loaded.threshold, loaded.intercept) == (original.kind, original.threshold,
                                                                     original.intercept)
        assert np.array_equal(loaded.bank, bank) and np.array_equal(loaded.bank_wa, bank_wa)
