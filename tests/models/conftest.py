"""Fixtures for the models tests: a hashing encoder, synthetic labelled rows, a tiny trained filter, real MiniLM."""

from __future__ import annotations

import pytest
from model_helpers import synthetic_rows, write_jsonl, write_spec

from models.embedding import MINILM_MODEL_ID, Encoder, hashing_encoder


@pytest.fixture(scope="session")
def fake_encoder() -> Encoder:
    """A deterministic 64-dim hashing encoder, installed as the shared encoder of its model id."""
    enc = hashing_encoder(64, model_id="hashing-test")
    Encoder.install(enc)
    return enc


@pytest.fixture(scope="session")
def spec_data() -> dict:
    return {
        "name": "tinyfilter",
        "version": 1,
        "dimensions": [{"name": "impact", "weight": 0.5}, {"name": "evidence", "weight": 0.3},
                       {"name": "reach", "weight": 0.2}],
        "gatekeepers": [{"dimension": "evidence", "min": 3.0, "cap": 3.0}],
        "tiers": [{"name": "high", "threshold": 7.0}, {"name": "medium", "threshold": 4.0},
                  {"name": "low", "threshold": 0.0}],
        "hybrid": {"threshold": 2.0, "protected_tier": "medium", "max_false_negative_rate": 0.05},
        "prefilter": {"min_content_length": 20, "domain_exclusions": {"blocked": ["blocked.example"]}},
    }


@pytest.fixture(scope="session")
def trained(tmp_path_factory, fake_encoder, spec_data):
    """A tiny filter trained end to end (no student) with the hashing encoder: (spec, data path, TrainRun)."""
    from filters.spec import load_spec
    from models.probe import ProbeConfig
    from models.training.steps import TrainOptions, TrainRun

    root = tmp_path_factory.mktemp("filters")
    spec = load_spec(write_spec(root, spec_data))
    data = write_jsonl(root / "data.jsonl", synthetic_rows())
    opts = TrainOptions(probe=ProbeConfig(seeds=(0,), max_epochs=40, patience=5), folds=3, train_student=False,
                        n_boot=50, fn_margin=1.0)
    run = TrainRun(spec, data, encoder=fake_encoder, options=opts, workdir=root / "work")
    run.run(("split", "embed", "probe", "router", "student", "calibrate", "curve", "evaluate"))
    return spec, data, run


@pytest.fixture(scope="session")
def minilm() -> Encoder:
    """The real bundled MiniLM (by id: no longer the default embedding), loaded once per session (slow tests only)."""
    return Encoder.shared(MINILM_MODEL_ID)
