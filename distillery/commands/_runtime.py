"""Process setup shared by the commands that load models: the settings tree's thread policy and plain logging."""

from __future__ import annotations

import logging

from models.embedding import Encoder
from streams.settings import Settings


def model_runtime() -> None:
    """Call before loading a model: the one thread policy (ThreadSettings.apply: offline hub, quiet tokenizers,
    DISTILLERY_THREADS_TORCH torch threads) and INFO logging."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    Settings.from_env().threads.apply()


def shared_encoder() -> Encoder:
    """The shared embedding to train or screen with: DISTILLERY_EMBEDDING_MODEL from the settings tree, else the
    shipped default (serving never asks: each filter's manifest names its encoder)."""
    return Encoder.shared(Settings.from_env().embedding_model or None)
