"""Stream test fixtures: one embedded broker per session, a fresh topic prefix per test, worker subprocesses."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from stream_helpers import Worker, article, collect, committed, decoded, produce  # noqa: F401 - re-exported

from streams.settings import Settings


@pytest.fixture
def settings(bootstrap: str) -> Settings:
    """Settings on the session broker with a topic prefix of its own, so tests never see each other's data."""
    return Settings(bootstrap_servers=bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:8]}.", partitions=3,
                    batch_size=8, batch_within=0.2, stage2_batch_size=8)


@pytest.fixture
def start_worker(settings: Settings, tmp_path: Path):
    """Factory starting worker subprocesses that are stopped after the test."""
    workers: list[Worker] = []

    def start(**kwargs: object) -> Worker:
        worker = Worker(settings, tmp_path / f"worker{len(workers)}.log", **kwargs)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture(scope="module")
def pipeline():
    """The real shipped pipeline (every trained filter, students loaded): what `score_batch` compares the stream to."""
    from models.pipeline import Pipeline, PipelineError  # lazy: torch; only the real-pipeline stream tests need it

    try:
        return Pipeline.load(None, with_student=True)
    except PipelineError as err:
        pytest.skip(f"no trained filter to stream with: {err}")
