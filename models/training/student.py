"""Training the Stage-2 student: targets, loss, sample weights and the LoRA training loop (keeps the best val epoch).

The trained adapter is loaded for inference by `models.student.model.Student`; serving never imports this module.
With LoRA only in the top layers, the frozen lower layers are computed once (`models.training.student_cache`).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from filters.postfilter import weighted_averages
from filters.spec import FilterSpec
from models.metrics import mae_report
from models.student.backbone import (
    BaseModel,
    StudentError,
    load_base,
    load_tokenizer,
    lora_model,
    model_kind,
    resolve_base,
    set_pooling,
)
from models.student.config import FORMAT_VERSION, STUDENT_JSON, StudentConfig
from models.student.model import collate, encode_articles, forward_all, limit_threads, pick_device
from models.training.student_cache import FrozenBottom

AUTO_CPU_ENCODER_LAYERS = 2


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
    wa = weighted_averages(y, weights)
    return (1.0 + wa * scale).astype(np.float32)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# -- training --------------------------------------------------------------------------------------------------


# Over 60 lines on purpose: set-up, the epoch loop with its best-epoch save, and the final record read as one
# sequence; the parts with a name of their own are _build_model, _cache_bottom, _schedule and _meta.
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
    dev = pick_device(device)
    if dev.type == "cpu":
        limit_threads(config.threads)
    dims = spec.dimension_names
    y_train, y_val = targets(train_rows, dims), targets(val_rows, dims)
    mean, std = y_train.mean(axis=0), y_train.std(axis=0)
    std[std < 1e-6] = 1.0
    base = resolve_base(config.base_model)
    tokenizer = load_tokenizer(base)
    t0 = time.perf_counter()
    train_ids = encode_articles(train_rows, tokenizer, config.recipe())
    val_ids = encode_articles(val_rows, tokenizer, config.recipe())
    tokenize_s = time.perf_counter() - t0
    model, model_type, top = _build_model(base, len(dims), tokenizer.pad_token_id, config, dev)
    t0 = time.perf_counter()
    frozen, train_cache, val_cache = _cache_bottom(model, top, train_ids, val_ids, tokenizer.pad_token_id, dev,
                                                   progress)
    cache_s = time.perf_counter() - t0
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer, scheduler, total_steps = _schedule(trainable, config, len(train_ids))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = _meta(spec, base, model_type, mean, std, config, len(train_rows), len(val_rows), model)
    w_train = torch.from_numpy(sample_weights(y_train, spec.weights, config.sample_weight_scale))
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
            report = mae_report(raw * std + mean, y_val, dims, spec.weights)
            history.append({"epoch": epoch, "steps": loop.step,
                            "train_loss": float(np.mean(losses)) if losses else None, "val": report,
                            "elapsed_s": round(time.perf_counter() - t_train, 1)})
            bar.write(f"epoch {epoch}: train loss {history[-1]['train_loss']}, val MAE {report['mae']:.4f}, "
                      f"WA MAE {report['wa_mae']:.4f}")
            if report["mae"] <= min(h["val"]["mae"] for h in history):
                meta["metrics"] = {"best_epoch": epoch, "val": report, "history": history}
                _save(model, out, meta, base)
    bar.close()
    best = min(history, key=lambda h: h["val"]["mae"])
    meta["metrics"] = {
        "best_epoch": best["epoch"], "val": best["val"], "history": history, "steps": loop.step,
        "skipped_batches": loop.skipped, "tokenize_s": round(tokenize_s, 1), "cache_s": round(cache_s, 1),
        "train_s": round(time.perf_counter() - t_train, 1), "trainable_parameters": meta["trainable_parameters"],
        "trained_layers": top, "device": str(dev),
    }
    (out / STUDENT_JSON).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return dict(meta["metrics"])


def _build_model(base: BaseModel, n_dims: int, pad_id: int, config: StudentConfig,
                 dev: torch.device) -> tuple[Any, str, list[int] | None]:
    """Base model with its regression head and pooling, LoRA in the top `train_layers` (None: every layer; auto:
    the top 2 for encoders on CPU), on `dev`. Returns (model, model_type, the LoRA layers or None for all)."""
    base_model = load_base(base, n_dims, pad_id)
    model_type = str(base_model.config.model_type)
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
    return model, model_type, top


def _cache_bottom(model: Any, top: list[int] | None, train_ids: list[list[int]], val_ids: list[list[int]],
                  pad_id: int, dev: torch.device, progress: bool
                  ) -> tuple[FrozenBottom | None, list[torch.Tensor] | None, list[torch.Tensor] | None]:
    """With LoRA only in the `top` layers: the frozen lower layers' outputs of every train and val row, once."""
    if top is None:
        return None, None, None
    frozen = FrozenBottom(model, top[0])
    train_cache = frozen.compute(train_ids, collate, pad_id, dev, desc="cache train" if progress else None)
    val_cache = frozen.compute(val_ids, collate, pad_id, dev, desc="cache val" if progress else None)
    return frozen, train_cache, val_cache


def _schedule(trainable: list[torch.nn.Parameter], config: StudentConfig, n_train: int) -> tuple[Any, Any, int]:
    """AdamW with linear warm-up then linear decay to 0 over the run; returns (optimizer, scheduler, total steps)."""
    total_steps = math.ceil(n_train / config.batch_size) * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    warmup = int(total_steps * config.warmup_fraction)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at), total_steps


def _meta(spec: FilterSpec, base: BaseModel, model_type: str, mean: np.ndarray, std: np.ndarray,
          config: StudentConfig, n_train: int, n_val: int, model: Any) -> dict[str, Any]:
    """The `student.json` record (what `Student.load` needs: base, recipe, target standardisation, config)."""
    recipe = config.recipe()
    return {
        "format_version": FORMAT_VERSION, "filter": spec.key, "kind": model_kind(model_type),
        "model_type": model_type, "base_model": base.as_dict(), "dimension_names": spec.dimension_names,
        "target_mean": mean.tolist(), "target_std": std.tolist(), "recipe": recipe.as_dict(),
        "recipe_fingerprint": recipe.fingerprint(), "config": config.as_dict(), "train_rows": n_train,
        "val_rows": n_val, "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total_parameters": sum(p.numel() for p in model.parameters()),
    }


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
        hook = partial(self._feed_cache, cache) if cache is not None else None
        return forward_all(self.model, ids, self.pad_id, self.device, max(16, self.config.batch_size * 2),
                           progress=progress, before_batch=hook)

    def _feed_cache(self, cache: list[torch.Tensor], rows: list[int]) -> None:
        """Hand the cached frozen-layer outputs of `rows` to the stand-in before the batch runs."""
        self.stub.current = FrozenBottom.batch([cache[i] for i in rows], self.device)


def _save(model: Any, out: Path, meta: dict[str, Any], base: BaseModel) -> None:
    """Write the PEFT adapter (LoRA + head) and student.json; the base weights are never stored."""
    model.save_pretrained(out)
    cfg_path = out / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["base_model_name_or_path"] = base.model_id  # portable: not this machine's site-packages path
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").unlink(missing_ok=True)  # PEFT's empty model-card template; student.json is the record
    (out / STUDENT_JSON).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
