"""The Stage-2 student's configuration (`StudentConfig`), stored in `student.json` beside the adapter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from models.recipe import Recipe

STUDENT_JSON = "student.json"
FORMAT_VERSION = 1


@dataclass
class StudentConfig:
    """Everything that shapes a trained student; stored in `student.json`."""

    base_model: str | None = None  # None = bundled MiniLM; or a local HF model folder / cached hub id
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] | None = None  # None = query,value (encoders) / q,k,v,o_proj (decoders)
    extra_trainable: tuple[str, ...] = ()  # module names trained fully and saved with the head (e.g. LayerNorms)
    max_tokens: int = 256
    head_fraction: float = 0.5
    separator: str = " [...] "
    batch_size: int = 16
    epochs: int = 3
    lr: float = 1.5e-3
    seed: int = 42
    sample_weight_scale: float = 0.0  # per-row weight 1 + WA × scale (anchor's needle-filter weighting)
    loss: str = "smooth_l1"  # or "mse"; computed on standardised targets
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    grad_clip: float = 1.0
    pooling: str = "cls"  # encoders: "cls" (the model's pooler) or "mean" (masked token mean); decoders: last token
    # LoRA only in the top N layers, the lower ones cached once (models.training.student_cache); 0 = every layer;
    # None = auto: top 2 for encoders on CPU (what fits a shared 2-core machine), every layer otherwise.
    train_layers: int | None = None
    max_steps: int | None = None  # stop early (tests, speed measurements)
    gradient_checkpointing: bool = False
    threads: int = 2

    def recipe(self) -> Recipe:
        return Recipe(max_tokens=self.max_tokens, head_fraction=self.head_fraction, separator=self.separator)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["target_modules"] = list(self.target_modules) if self.target_modules else None
        out["extra_trainable"] = list(self.extra_trainable)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StudentConfig:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("target_modules", "extra_trainable"):
            if kwargs.get(key) is not None:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)
