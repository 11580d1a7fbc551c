"""Process setup shared by the commands that load models: the settings tree's thread policy and plain logging."""

from __future__ import annotations

import logging

from streams.settings import Settings


def model_runtime() -> None:
    """Call before loading a model: the one thread policy (ThreadSettings.apply: offline hub, quiet tokenizers,
    DISTILLERY_THREADS_TORCH torch threads) and INFO logging."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    Settings.from_env().threads.apply()
