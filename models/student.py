"""Stage-2 student: a small transformer with a LoRA adapter and a regression head, trained on oracle scores.

Works for encoders (the bundled MiniLM, [CLS] pooler) and decoders (Gemma-3 / Qwen, pooled at the last non-pad
token). Saved as a PEFT adapter directory (`PeftModel.from_pretrained(base, dir)` loads it) plus `student.json`
with the base model id/version, the text recipe, target standardisation and training metrics.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from filters.spec import FilterSpec
from models.recipe import Recipe, model_text
from models.student_backbone import (
    BaseModel,
    StudentError,
    load_base,
    load_tokenizer,
    lora_model,
    model_kind,
    resolve_base,
    set_pooling,
)
from models.student_cache import FrozenBottom

STUDENT_JSON = "student.json"
FORMAT_VERSION = 1
AUTO_CPU_ENCODER_LAYERS = 2
__all__ = ["Student", "StudentConfig", "StudentError", "regression_loss", "train_student"]


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
    # LoRA only in the top N layers, the lower ones cached once (models.student_cache); 0 = every layer;
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


# -- data ------------------------------------------------------------------------------------------------------


def targets(rows: Sequence[Mapping[str, Any]], dims: Sequence[str]) -> np.ndarray:
    """Oracle scores of `rows` as a float32 (n, n_dims) array in `dims` order; a missing score is an error."""
    out = np.empty((len(rows), len(dims)), dtype=np.float32)
    for i, row in enumerate(rows):
        scores = row.get("scores")
        if not isinstance(scores, Mapping):
            raise StudentError(
                f"training row {row.get('id', i)!r} has no `scores` mapping; every row needs {list(dims)}"
            )
        missing = [d for d in dims if scores.get(d) is None]
        if missing:
            raise StudentError(
                f"training row {row.get('id', i)!r} lacks scores for {missing}; fix the data or drop the row"
            )
        out[i] = [float(scores[d]) for d in dims]
    if not np.isfinite(out).all():
        raise StudentError("training scores contain NaN or infinity; clean the data first")
    return out


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


def regression_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
                    kind: str = "smooth_l1") -> torch.Tensor:
    """Per-row loss (mean over dimensions), then the weighted mean over rows (anchor: mean of loss × weight)."""
    if kind == "smooth_l1":
        per = torch.nn.functional.smooth_l1_loss(pred, target, reduction="none")
    elif kind == "mse":
        per = torch.nn.functional.mse_loss(pred, target, reduction="none")
    else:
        raise StudentError(f"unknown student loss {kind!r}; use 'smooth_l1' or 'mse'")
    per_row = per.float().mean(dim=1)
    if weights is not None:
        per_row = per_row * weights
    return per_row.mean()


def sample_weights(y: np.ndarray, weights: Sequence[float], scale: float) -> np.ndarray:
    """Anchor weighting `1 + WA × scale` (scale 0 = uniform)."""
    wa = y @ np.asarray(weights, dtype=np.float32)
    return (1.0 + wa * scale).astype(np.float32)


def mae_report(pred: np.ndarray, y: np.ndarray, dims: Sequence[str], weights: Sequence[float]) -> dict[str, Any]:
    """Per-dimension MAE, their mean, and the MAE of the weighted average (clamped to 0–10 like the scorer)."""
    p = np.clip(pred, 0.0, 10.0)
    per_dim = np.abs(p - y).mean(axis=0)
    w = np.asarray(weights, dtype=np.float64)
    return {
        "mae": float(per_dim.mean()),
        "wa_mae": float(np.abs(p @ w - y @ w).mean()),
        "per_dim": {d: float(v) for d, v in zip(dims, per_dim, strict=True)},
        "n": int(len(y)),
    }


def _device(device: str | None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _limit_threads(n: int) -> None:
    if n and torch.get_num_threads() > n:
        torch.set_num_threads(n)


@torch.inference_mode()
def _forward_all(model: Any, ids: Sequence[Sequence[int]], pad_id: int, device: torch.device, batch_size: int,
                 progress: str | None = None, cache: Sequence[torch.Tensor] | None = None,
                 stub: Any = None) -> np.ndarray:
    """Raw model outputs for token-id rows, batched by length (less padding), returned in input order.

    With `cache`/`stub` (inside `FrozenBottom.active()`), the frozen lower layers' cached outputs are used.
    """
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: list[np.ndarray] = [np.empty(0)] * len(ids)
    autocast = device.type == "cuda"
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc=progress, leave=False, disable=progress is None):
        chunk = order[start : start + batch_size]
        input_ids, mask = collate([ids[i] for i in chunk], pad_id)
        if cache is not None:
            stub.current = FrozenBottom.batch([cache[i] for i in chunk], device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
        values = logits.float().cpu().numpy()
        for j, i in enumerate(chunk):
            out[i] = values[j]
    if not ids:
        return np.empty((0, 0), dtype=np.float32)
    return np.stack(out).astype(np.float32)


# -- training --------------------------------------------------------------------------------------------------


def train_student(spec: FilterSpec, train_rows: Sequence[Mapping[str, Any]], val_rows: Sequence[Mapping[str, Any]],
                  out_dir: str | Path, config: StudentConfig | None = None, *, device: str | None = None,
                  progress: bool = True) -> dict[str, Any]:
    """Train a LoRA regression student on oracle scores; keep the epoch with the best val MAE in `out_dir`.

    Targets are standardised per dimension (mean/std stored in student.json); returns the metrics dict that is
    also written to student.json (`best_epoch`, `val` report of the kept epoch, per-epoch `history`, timings).
    """
    config = config or StudentConfig()
    if not train_rows:
        raise StudentError("no training rows given; pass the train split of a labelled data file")
    if not val_rows:
        raise StudentError("no validation rows given; the best epoch is chosen on val, so pass a val split")
    _seed_everything(config.seed)
    dev = _device(device)
    if dev.type == "cpu":
        _limit_threads(config.threads)
    dims, weights = spec.dimension_names, spec.weights
    y_train, y_val = targets(train_rows, dims), targets(val_rows, dims)
    mean = y_train.mean(axis=0)
    std = y_train.std(axis=0)
    std[std < 1e-6] = 1.0
    recipe = config.recipe()
    base = resolve_base(config.base_model)
    tokenizer = load_tokenizer(base)
    t0 = time.perf_counter()
    train_ids = encode_articles(train_rows, tokenizer, recipe)
    val_ids = encode_articles(val_rows, tokenizer, recipe)
    tokenize_s = time.perf_counter() - t0

    base_model = load_base(base, len(dims), tokenizer.pad_token_id)
    model_type = base_model.config.model_type
    set_pooling(base_model, config.pooling)
    if config.gradient_checkpointing:
        base_model.gradient_checkpointing_enable()
        base_model.enable_input_require_grads()
    n_layers = int(base_model.config.num_hidden_layers)
    n_top = config.train_layers
    if n_top is None:
        n_top = AUTO_CPU_ENCODER_LAYERS if dev.type == "cpu" and model_kind(model_type) == "encoder" else 0
    top = list(range(n_layers - n_top, n_layers)) if 0 < n_top < n_layers else None
    model = lora_model(base_model, model_type, config.lora_r, config.lora_alpha, config.lora_dropout,
                       config.target_modules, config.extra_trainable, layers=top)
    model.to(dev)
    frozen, train_cache, val_cache = None, None, None
    t_cache = time.perf_counter()
    if top is not None:
        frozen = FrozenBottom(model, top[0])
        train_cache = frozen.compute(train_ids, collate, tokenizer.pad_token_id, dev,
                                     desc="cache train" if progress else None)
        val_cache = frozen.compute(val_ids, collate, tokenizer.pad_token_id, dev,
                                   desc="cache val" if progress else None)
    cache_s = time.perf_counter() - t_cache
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    n_total = sum(p.numel() for p in model.parameters())

    w_train = torch.from_numpy(sample_weights(y_train, weights, config.sample_weight_scale))
    steps_per_epoch = math.ceil(len(train_ids) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    warmup = int(total_steps * config.warmup_fraction)

    def lr_at(step: int) -> float:  # linear warmup, then linear decay to 0
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "filter": spec.key,
        "kind": model_kind(model_type),
        "model_type": model_type,
        "base_model": base.as_dict(),
        "dimension_names": dims,
        "target_mean": mean.tolist(),
        "target_std": std.tolist(),
        "recipe": recipe.as_dict(),
        "recipe_fingerprint": recipe.fingerprint(),
        "config": config.as_dict(),
        "train_rows": len(train_rows),
        "val_rows": len(val_rows),
        "trainable_parameters": n_trainable,
        "total_parameters": n_total,
    }
    loop = _Loop(model, config, tokenizer.pad_token_id, dev, optimizer, scheduler, trainable, total_steps,
                 torch.from_numpy((y_train - mean) / std), w_train)
    history: list[dict[str, Any]] = []
    t_train = time.perf_counter()
    bar = tqdm(total=total_steps, desc=f"student {spec.key}", disable=not progress)
    with frozen.active() if frozen is not None else nullcontext() as stub:
        loop.stub = stub
        for epoch in range(1, config.epochs + 1):
            if loop.step >= total_steps:
                break
            losses = loop.train_epoch(train_ids, train_cache, epoch, bar)
            raw = loop.predict(val_ids, val_cache, progress="val" if progress else None)
            report = mae_report(raw * std + mean, y_val, dims, weights)
            record = {"epoch": epoch, "steps": loop.step, "train_loss": float(np.mean(losses)) if losses else None,
                      "val": report, "elapsed_s": round(time.perf_counter() - t_train, 1)}
            history.append(record)
            bar.write(f"epoch {epoch}: train loss {record['train_loss']}, val MAE {report['mae']:.4f}, "
                      f"WA MAE {report['wa_mae']:.4f}")
            if report["mae"] <= min(h["val"]["mae"] for h in history):
                meta["metrics"] = {"best_epoch": epoch, "val": report, "history": history}
                _save(model, out, meta, base)
    bar.close()
    best = min(history, key=lambda h: h["val"]["mae"])
    metrics = {
        "best_epoch": best["epoch"],
        "val": best["val"],
        "history": history,
        "steps": loop.step,
        "skipped_batches": loop.skipped,
        "tokenize_s": round(tokenize_s, 1),
        "cache_s": round(cache_s, 1),
        "train_s": round(time.perf_counter() - t_train, 1),
        "trainable_parameters": n_trainable,
        "trained_layers": top,
        "device": str(dev),
    }
    meta["metrics"] = metrics
    (out / STUDENT_JSON).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return metrics


@dataclass
class _Loop:
    """The optimisation state shared by the epochs: one training pass at a time, and scoring for val."""

    model: Any
    config: StudentConfig
    pad_id: int
    device: torch.device
    optimizer: torch.optim.Optimizer
    scheduler: Any
    trainable: list[torch.nn.Parameter]
    total_steps: int
    y_std: torch.Tensor  # standardised train targets
    weights: torch.Tensor  # per-row sample weights
    stub: Any = None  # FrozenBottom stand-in while the cache is active
    step: int = 0
    skipped: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.config.seed)

    def train_epoch(self, ids: list[list[int]], cache: list[torch.Tensor] | None, epoch: int, bar: Any) -> list[float]:
        """One shuffled pass (or until `total_steps`); returns the finite batch losses."""
        cfg, dev = self.config, self.device
        self.model.train()
        perm = self.rng.permutation(len(ids))
        losses: list[float] = []
        for start in range(0, len(perm), cfg.batch_size):
            if self.step >= self.total_steps:
                break
            idx = perm[start : start + cfg.batch_size]
            input_ids, mask = collate([ids[i] for i in idx], self.pad_id)
            if cache is not None:
                self.stub.current = FrozenBottom.batch([cache[i] for i in idx], dev)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                logits = self.model(input_ids=input_ids.to(dev), attention_mask=mask.to(dev)).logits
            loss = regression_loss(logits.float(), self.y_std[idx].to(dev), self.weights[idx].to(dev), cfg.loss)
            self.step += 1
            bar.update(1)
            if not torch.isfinite(loss):
                self.skipped += 1  # the anchor skips NaN batches instead of corrupting the adapter
                self.optimizer.zero_grad(set_to_none=True)
                self.scheduler.step()
                continue
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.trainable, cfg.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", epoch=epoch)
        self.model.eval()
        return losses

    def predict(self, ids: list[list[int]], cache: list[torch.Tensor] | None, progress: str | None) -> np.ndarray:
        """Standardised outputs for `ids` (through the cache when it is active)."""
        return _forward_all(self.model, ids, self.pad_id, self.device, max(16, self.config.batch_size * 2),
                            progress=progress, cache=cache, stub=self.stub)


def _save(model: Any, out: Path, meta: dict[str, Any], base: BaseModel) -> None:
    """Write the PEFT adapter (LoRA + head) and student.json; the base weights are never stored."""
    model.save_pretrained(out)
    cfg_path = out / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["base_model_name_or_path"] = base.model_id  # portable: not this machine's site-packages path
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").unlink(missing_ok=True)  # PEFT's empty model-card template; student.json is the record
    (out / STUDENT_JSON).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


# -- inference -------------------------------------------------------------------------------------------------


@dataclass
class Student:
    """A loaded student: `predict` returns RAW (uncalibrated) scores in the spec's dimension order."""

    model: Any
    tokenizer: Any
    meta: dict[str, Any]
    adapter_dir: Path
    device: torch.device
    merged: bool = False
    _fingerprint: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def load(cls, adapter_dir: str | Path, device: str | None = None, *, merge: bool = True,
             base_model: str | None = None) -> Student:
        """Load base + adapter; `merge` folds LoRA into the weights (faster inference); bf16 on CUDA.

        `base_model` overrides the base recorded in student.json (e.g. a local copy of Gemma-3 weights).
        """
        from peft import PeftModel

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
        dev = _device(device)
        if dev.type == "cpu":
            _limit_threads(int(meta.get("config", {}).get("threads", 2)))
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
        raw = _forward_all(self.model, input_ids, self.tokenizer.pad_token_id, self.device, batch_size)
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
