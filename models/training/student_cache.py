"""Frozen-bottom cache: compute the frozen embeddings + lower layers once per article, train only the top layers.

When LoRA adapts only the top `n` transformer layers, the lower layers' output for an article never changes during
training. Caching it turns each epoch into a forward+backward through the top layers only (on a 6-layer MiniLM with
the top 2 trained, about a third of the work), which is what makes Stage-2 training fit on a shared 2-core CPU.
The saved adapter is an ordinary PEFT adapter: inference runs the full model and gives the same outputs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from tqdm.auto import tqdm

from models.student.backbone import StudentError


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the last frozen layer has run."""


class _Passthrough(torch.nn.Module):
    """Stands in for a frozen layer whose output is already in the cache."""

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return hidden_states


class _Cached(torch.nn.Module):
    """Stands in for the embedding module: returns the cached hidden states of the current batch."""

    def __init__(self) -> None:
        super().__init__()
        self.current: torch.Tensor | None = None

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.current is None:
            raise RuntimeError("frozen-bottom cache used without a batch set")
        return self.current


def backbone_parts(model: Any) -> tuple[torch.nn.Module, str, torch.nn.ModuleList]:
    """(owner of the embedding module, its attribute name, the layer list) of a BERT- or decoder-style model."""
    base: Any = model.get_base_model() if hasattr(model, "get_base_model") else model
    body: Any = getattr(base, base.base_model_prefix, None) if getattr(base, "base_model_prefix", "") else None
    body = body if body is not None else base
    if hasattr(body, "embeddings") and hasattr(getattr(body, "encoder", None), "layer"):
        return body, "embeddings", body.encoder.layer  # BERT family
    if hasattr(body, "embed_tokens") and hasattr(body, "layers"):
        return body, "embed_tokens", body.layers  # Gemma / Qwen / Llama
    raise StudentError(f"{type(base).__name__}: cannot find its embeddings and layer list to cache the frozen bottom; "
                       "set StudentConfig.train_layers to None to train LoRA in every layer")


class FrozenBottom:
    """The cached output of the first `n_frozen` layers for each row, and a context that makes the model use it."""

    def __init__(self, model: torch.nn.Module, n_frozen: int) -> None:
        self.model = model
        self.owner, self.attr, self.layers = backbone_parts(model)
        if not 0 < n_frozen < len(self.layers):
            raise StudentError(f"cannot freeze {n_frozen} of {len(self.layers)} layers; train at least the top one")
        self.n_frozen = n_frozen
        self.stub = _Cached()

    @torch.inference_mode()
    def compute(self, ids: Sequence[Sequence[int]], collate: Any, pad_id: int, device: torch.device,
                batch_size: int = 32, desc: str | None = None) -> list[torch.Tensor]:
        """Hidden states after the last frozen layer, one (len_i, hidden) float32 tensor per row, in input order."""
        captured: dict[str, torch.Tensor] = {}

        def grab(_module: Any, _inputs: Any, output: Any) -> None:
            captured["h"] = output[0] if isinstance(output, tuple) else output
            raise _Stop

        handle = self.layers[self.n_frozen - 1].register_forward_hook(grab)
        was_training = self.model.training
        self.model.eval()
        out: list[torch.Tensor] = [torch.empty(0)] * len(ids)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        try:
            for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False, disable=desc is None):
                chunk = order[start : start + batch_size]
                input_ids, mask = collate([ids[i] for i in chunk], pad_id)
                try:
                    self.model(input_ids=input_ids.to(device), attention_mask=mask.to(device))
                except _Stop:
                    pass
                h = captured.pop("h").float().cpu()
                for j, i in enumerate(chunk):
                    out[i] = h[j, : len(ids[i])].clone()
        finally:
            handle.remove()
            self.model.train(was_training)
        return out

    @staticmethod
    def batch(rows: Sequence[torch.Tensor], device: torch.device) -> torch.Tensor:
        """Right-pad cached rows to the batch's longest (pad positions are masked by the attention mask)."""
        width = max(r.shape[0] for r in rows)
        out = torch.zeros((len(rows), width, rows[0].shape[1]), dtype=rows[0].dtype)
        for i, r in enumerate(rows):
            out[i, : r.shape[0]] = r
        return out.to(device)

    @contextmanager
    def active(self) -> Iterator[_Cached]:
        """Swap the embeddings and frozen layers for stand-ins; set `.current` on the yielded stub per batch."""
        original_embed = getattr(self.owner, self.attr)
        originals = [self.layers[i] for i in range(self.n_frozen)]
        setattr(self.owner, self.attr, self.stub)
        for i in range(self.n_frozen):
            self.layers[i] = _Passthrough()
        try:
            yield self.stub
        finally:
            setattr(self.owner, self.attr, original_embed)
            for i, layer in enumerate(originals):
                self.layers[i] = layer
            self.stub.current = None
