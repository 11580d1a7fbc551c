"""An on-disk embedding cache keyed by model, recipe and text hash, so re-runs never re-embed."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file
from tqdm import tqdm

from models.embedding import Encoder

log = logging.getLogger(__name__)

CACHE_ENV = "DISTILLERY_CACHE_DIR"
DEFAULT_CACHE = Path("/tmp/distillery-cache")


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class EmbeddingCache:
    """text hash → embedding for one (model, recipe); stored as safetensors under `cache_dir()`."""

    def __init__(self, encoder: Encoder, root: Path | None = None) -> None:
        self.encoder = encoder
        fp = hashlib.sha256(f"{encoder.model_id}|{encoder.version}|{encoder.recipe.fingerprint()}".encode())
        self.path = (root or cache_dir()) / f"emb-{fp.hexdigest()[:16]}.safetensors"
        self._store: dict[str, np.ndarray] = {}
        if self.path.is_file():
            try:
                self._store = dict(load_file(str(self.path)))
            except Exception as err:  # noqa: BLE001 - a broken cache is rebuilt, not fatal
                log.warning("ignoring unreadable embedding cache %s (%s)", self.path, err)

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        save_file(self._store, str(tmp))
        os.replace(tmp, self.path)

    def embed(self, articles: Sequence[Mapping[str, Any]], batch_size: int = 32, chunk: int = 256) -> np.ndarray:
        """Embeddings of `articles` (recipe texts), computing only the ones not cached; saved every chunk."""
        texts = self.encoder.texts(articles)
        keys = [_text_key(t) for t in texts]
        todo = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in self._store}.items())
        if todo:
            with tqdm(total=len(todo), desc=f"embedding ({self.encoder.model_id})", unit="art") as bar:
                for start in range(0, len(todo), chunk):
                    part = todo[start:start + chunk]
                    vecs = self.encoder.encode_texts([t for _, t in part], batch_size=batch_size)
                    for (k, _), v in zip(part, vecs, strict=True):
                        self._store[k] = v
                    self._save()
                    bar.update(len(part))
        if not keys:
            return np.zeros((0, self.encoder.dimension), dtype=np.float32)
        return np.stack([self._store[k] for k in keys]).astype(np.float32)
