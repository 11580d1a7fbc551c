"""The Stage-2 student at inference: load a trained LoRA adapter onto its base model and predict raw scores.

Works for encoders (the bundled MiniLM, [CLS] or mean pooling) and decoders (Gemma-3 / Qwen, pooled at the last
non-pad token). A student is a PEFT adapter directory plus `student.json` (base model id/version, the text recipe,
target standardisation, training metrics). Serving imports only this module; training lives in
`models.training.student`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from models.recipe import Recipe, model_text
from models.student.backbone import StudentError, load_base, load_tokenizer, resolve_base, set_pooling
from models.student.config import FORMAT_VERSION, STUDENT_JSON


class ScorePredictor(Protocol):
    """What Stage 2 needs of a student: raw scores (n, n_dims) for articles (`Student`, or a test stand-in)."""

    def predict(self, articles: Sequence[Mapping[str, Any]], batch_size: int = 16) -> np.ndarray: ...


def encode_articles(articles: Sequence[Mapping[str, Any]], tokenizer: Any, recipe: Recipe) -> list[list[int]]:
    """Token ids (special tokens included) of each article's recipe text, head+tail fitted to `recipe.max_tokens`."""
    texts = [model_text(a, recipe, tokenizer) for a in articles]
    enc = tokenizer(texts, truncation=True, max_length=recipe.max_tokens, add_special_tokens=True)
    return [list(ids) for ids in enc["input_ids"]]


def collate(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad a batch to its longest row: (input_ids, attention_mask)."""
    width = max(1, max(len(x) for x in ids))
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return input_ids, mask


def pick_device(device: str | None) -> torch.device:
    """The named device, else CUDA when available, else CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def limit_threads(n: int) -> None:
    """Cap torch's CPU threads at `n` (a shared machine)."""
    if n and torch.get_num_threads() > n:
        torch.set_num_threads(n)


@torch.inference_mode()
def forward_all(model: Any, ids: Sequence[Sequence[int]], pad_id: int, device: torch.device, batch_size: int,
                progress: str | None = None, before_batch: Callable[[list[int]], None] | None = None) -> np.ndarray:
    """Raw model outputs for token-id rows, batched by length (less padding), returned in input order.

    `before_batch(row_indices)` runs before each batch (training uses it to feed its layer cache)."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: list[np.ndarray] = [np.empty(0)] * len(ids)
    autocast = device.type == "cuda"
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc=progress, leave=False, disable=progress is None):
        chunk = order[start : start + batch_size]
        input_ids, mask = collate([ids[i] for i in chunk], pad_id)
        if before_batch is not None:
            before_batch(chunk)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
        values = logits.float().cpu().numpy()
        for j, i in enumerate(chunk):
            out[i] = values[j]
    if not ids:
        return np.empty((0, 0), dtype=np.float32)
    return np.stack(out).astype(np.float32)


@dataclass
class Student:
    """A loaded student: `predict` returns RAW (uncalibrated) scores in the spec's dimension order."""

    model: Any
    tokenizer: Any
    meta: dict[str, Any]
    adapter_dir: Path
    device: torch.device
    merged: bool = False
    name: str = ""  # which served student this is (models.student_select), set by models.pipeline
    _fingerprint: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def load(cls, adapter_dir: str | Path, device: str | None = None, *, merge: bool = True,
             base_model: str | None = None) -> Student:
        """Load base + adapter; `merge` folds LoRA into the weights (faster inference); bf16 on CUDA.

        `base_model` overrides the base recorded in student.json (e.g. a local copy of Gemma-3 weights).
        """
        from peft import PeftModel  # lazy: peft (and its transformers imports) only when an adapter is loaded

        adapter_dir = Path(adapter_dir)
        meta_path = adapter_dir / STUDENT_JSON
        if not meta_path.is_file():
            raise StudentError(
                f"{adapter_dir}: no {STUDENT_JSON}; train a student first (`distillery train`) or pass its adapter dir"
            )
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format_version") != FORMAT_VERSION:
            raise StudentError(f"{meta_path}: format_version {meta.get('format_version')} is not {FORMAT_VERSION}; "
                               "retrain the student with this version of distillery")
        base = resolve_base(base_model or meta["base_model"]["id"])
        dev = pick_device(device)
        if dev.type == "cpu":
            limit_threads(int(meta.get("config", {}).get("threads", 2)))
        tokenizer = load_tokenizer(base)
        model = load_base(base, len(meta["dimension_names"]), tokenizer.pad_token_id)
        set_pooling(model, meta.get("config", {}).get("pooling", "cls"))
        try:
            model = PeftModel.from_pretrained(model, str(adapter_dir))
        except (OSError, ValueError, RuntimeError) as err:
            raise StudentError(f"{adapter_dir}: cannot load the LoRA adapter onto {base.model_id}: {err}") from None
        if merge:
            model = model.merge_and_unload()
        if dev.type == "cuda":
            model = model.to(torch.bfloat16)
        model.to(dev).eval()
        return cls(model=model, tokenizer=tokenizer, meta=meta, adapter_dir=adapter_dir, device=dev, merged=merge)

    @property
    def recipe(self) -> Recipe:
        return Recipe(**self.meta["recipe"])

    @property
    def dimension_names(self) -> list[str]:
        return list(self.meta["dimension_names"])

    def encode(self, articles: Sequence[Mapping[str, Any]]) -> list[list[int]]:
        """Token ids the student sees for each article (the one recipe, head+tail in its own tokenizer)."""
        return encode_articles(articles, self.tokenizer, self.recipe)

    def predict(self, articles: Sequence[Mapping[str, Any]], batch_size: int = 16) -> np.ndarray:
        """RAW scores (n, n_dims), float32, before calibration and clamping."""
        if not articles:
            return np.empty((0, len(self.dimension_names)), dtype=np.float32)
        return self.predict_ids(self.encode(articles), batch_size=batch_size)

    def predict_ids(self, input_ids: Sequence[Sequence[int]], batch_size: int = 16) -> np.ndarray:
        """RAW scores for pre-tokenised rows (special tokens included), e.g. when no tokenizer is available."""
        if not input_ids:
            return np.empty((0, len(self.dimension_names)), dtype=np.float32)
        raw = forward_all(self.model, input_ids, self.tokenizer.pad_token_id, self.device, batch_size)
        mean = np.asarray(self.meta["target_mean"], dtype=np.float32)
        std = np.asarray(self.meta["target_std"], dtype=np.float32)
        return (raw * std + mean).astype(np.float32)

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this student's outputs: base model, recipe, dimensions and a digest of the adapter."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for name in sorted(p.name for p in self.adapter_dir.glob("adapter_model.*")):
                digest.update((self.adapter_dir / name).read_bytes())
            self._fingerprint = {
                "base_model": self.meta["base_model"],
                "kind": self.meta["kind"],
                "recipe": self.meta["recipe_fingerprint"],
                "dimensions": self.dimension_names,
                "adapter_sha256": digest.hexdigest()[:16],
            }
        return dict(self._fingerprint)
