"""Process setup shared by the commands that load models: offline hub, quiet tokenizers, two torch threads."""

from __future__ import annotations

import logging
import os


def model_runtime() -> None:
    """Call before loading a model: no hub downloads, no tokenizer thread pool, at most two torch threads."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch  # lazy: torch takes seconds to import; only commands that load a model pay for it

    torch.set_num_threads(min(2, torch.get_num_threads()))
