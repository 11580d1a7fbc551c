"""Session-wide test settings: offline hub, small thread pools, a tiny in-memory filter spec."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def tiny_spec_data() -> dict:
    """A valid three-dimension spec as a mapping; tests mutate copies of it."""
    return {
        "name": "tiny",
        "version": 1,
        "description": "three-dimension filter for tests",
        "dimensions": [
            {"name": "impact", "weight": 0.5},
            {"name": "evidence", "weight": 0.3},
            {"name": "reach", "weight": 0.2},
        ],
        "gatekeepers": [{"dimension": "evidence", "min": 3.0, "cap": 3.0}],
        "tiers": [
            {"name": "high", "threshold": 7.0},
            {"name": "medium", "threshold": 4.0},
            {"name": "low", "threshold": 0.0},
        ],
        "content_types": {
            "speculation": {"max_score": 3.0},
            "reckoning": {"penalty": 2.5},
            "greenwashing": {"max_dimensions": {"evidence": 3.0}, "max_overall": 4.0},
        },
        "hybrid": {"threshold": 2.0, "protected_tier": "medium"},
    }


@pytest.fixture
def tiny_spec(tiny_spec_data, tmp_path):
    from filters.spec import parse_spec

    return parse_spec(tiny_spec_data, tmp_path / "tiny" / "v1" / "filter.yaml")


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS when set, else a Tansu broker on a free loopback port for the whole session."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    if external:
        yield external
        return
    from streams.broker import BrokerError, EmbeddedBroker

    broker = EmbeddedBroker()
    try:
        broker.start()
    except BrokerError as err:
        pytest.skip(f"embedded broker unavailable: {err}")
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
