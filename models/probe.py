"""Stage-1 probe: an MLP ensemble over standardised embeddings predicting every dimension (safetensors + JSON)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from torch import nn

PROBE_WEIGHTS = "probe.safetensors"
PROBE_CONFIG = "probe.json"


@dataclass
class ProbeConfig:
    """The anchor recipe (hidden 256-128, dropout 0.2, L1 loss, Adam 1e-3, early stopping) plus a seed ensemble."""

    hidden: tuple[int, ...] = (256, 128)
    dropout: float = 0.2
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 64
    max_epochs: int = 100
    patience: int = 10
    seeds: tuple[int, ...] = (0, 1, 2)
    wa_weight: float = 0.0  # extra L1 term on the weighted average (0 = anchor recipe)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeConfig:
        data = dict(data)
        for key in ("hidden", "seeds"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


class MLP(nn.Module):
    """Linear → ReLU → Dropout per hidden layer, then a linear output per dimension."""

    def __init__(self, input_dim: int, output_dim: int, hidden: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = input_dim
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.ReLU(), nn.Dropout(dropout)]
            prev = h
        layers.append(nn.Linear(prev, output_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class Probe:
    """Standardisation stats + ensemble members; `predict` returns clamped (n, n_dims) scores."""

    dimension_names: list[str]
    weights: list[float]
    mean: np.ndarray
    std: np.ndarray
    members: list[MLP]
    config: ProbeConfig
    metrics: dict[str, Any] = field(default_factory=dict)

    def standardise(self, embeddings: np.ndarray) -> np.ndarray:
        return ((np.asarray(embeddings, dtype=np.float32) - self.mean) / self.std).astype(np.float32)

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """Mean of the ensemble members, clamped to [0, 10]."""
        x = torch.from_numpy(self.standardise(embeddings))
        if len(x) == 0:
            return np.zeros((0, len(self.dimension_names)), dtype=np.float32)
        with torch.no_grad():
            out = torch.stack([m.eval()(x) for m in self.members]).mean(0)
        return np.clip(out.numpy(), 0.0, 10.0).astype(np.float32)

    def weighted_average(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores, dtype=np.float64) @ np.asarray(self.weights, dtype=np.float64)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, directory: Path) -> list[Path]:
        """Write `probe.safetensors` (stats + every member's weights) and `probe.json` (config)."""
        directory.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, np.ndarray] = {"mean": self.mean.astype(np.float32), "std": self.std.astype(np.float32)}
        for i, m in enumerate(self.members):
            for k, v in m.state_dict().items():
                tensors[f"member{i}.{k}"] = v.detach().cpu().numpy()
        save_file(tensors, str(directory / PROBE_WEIGHTS))
        meta = {
            "type": "mlp_ensemble",
            "input_dim": int(self.mean.shape[0]),
            "dimension_names": self.dimension_names,
            "weights": self.weights,
            "n_members": len(self.members),
            "config": asdict(self.config),
            "metrics": self.metrics,
        }
        (directory / PROBE_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
        return [directory / PROBE_WEIGHTS, directory / PROBE_CONFIG]

    @classmethod
    def load(cls, directory: Path) -> Probe:
        meta = json.loads((directory / PROBE_CONFIG).read_text())
        tensors = load_file(str(directory / PROBE_WEIGHTS))
        config = ProbeConfig.from_dict(meta["config"])
        members = []
        for i in range(meta["n_members"]):
            m = MLP(meta["input_dim"], len(meta["dimension_names"]), config.hidden, config.dropout)
            prefix = f"member{i}."
            state = {k[len(prefix):]: torch.from_numpy(v) for k, v in tensors.items() if k.startswith(prefix)}
            m.load_state_dict(state)
            m.eval()
            members.append(m)
        return cls(meta["dimension_names"], meta["weights"], tensors["mean"], tensors["std"], members, config,
                   meta.get("metrics", {}))


def _train_member(
    x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray, weights: np.ndarray,
    config: ProbeConfig, seed: int,
) -> tuple[MLP, float, int]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = MLP(x_tr.shape[1], y_tr.shape[1], config.hidden, config.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    xv, yv = torch.from_numpy(x_va), torch.from_numpy(y_va)
    w = torch.from_numpy(weights.astype(np.float32))
    best, best_state, best_epoch, stale = float("inf"), None, 0, 0
    for epoch in range(config.max_epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(len(xt)))
        for start in range(0, len(order), config.batch_size):
            idx = order[start:start + config.batch_size]
            pred = model(xt[idx])
            loss = (pred - yt[idx]).abs().mean()
            if config.wa_weight:
                loss = loss + config.wa_weight * ((pred - yt[idx]) @ w).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val = float((model(xv).clamp(0, 10) - yv).abs().mean())
        if val < best - 1e-5:
            best, best_epoch, stale = val, epoch + 1, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, best, best_epoch


def train_probe(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
    dimension_names: list[str], weights: list[float], config: ProbeConfig | None = None,
) -> Probe:
    """Fit standardisation on train, train one MLP per seed with early stopping on val MAE, keep the best states."""
    config = config or ProbeConfig()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matmuls: one thread avoids spin-waiting on a shared CPU
    try:
        return _train_probe(x_train, y_train, x_val, y_val, dimension_names, weights, config)
    finally:
        torch.set_num_threads(threads)


def _train_probe(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
    dimension_names: list[str], weights: list[float], config: ProbeConfig,
) -> Probe:
    mean = x_train.mean(0).astype(np.float32)
    std = (x_train.std(0) + 1e-6).astype(np.float32)

    def z(x: np.ndarray) -> np.ndarray:
        return ((x - mean) / std).astype(np.float32)

    y_tr, y_va = y_train.astype(np.float32), y_val.astype(np.float32)
    w = np.asarray(weights, dtype=np.float32)
    members, epochs, maes = [], [], []
    for seed in config.seeds:
        m, mae, ep = _train_member(z(x_train), y_tr, z(x_val), y_va, w, config, seed)
        members.append(m)
        maes.append(mae)
        epochs.append(ep)
    probe = Probe(list(dimension_names), list(weights), mean, std, members, config)
    pred = probe.predict(x_val)
    probe.metrics = {
        "val_mae": float(np.abs(pred - y_val).mean()),
        "val_wa_mae": float(np.abs(probe.weighted_average(pred) - y_val @ np.asarray(weights)).mean()),
        "member_val_mae": maes,
        "best_epochs": epochs,
        "n_train": int(len(x_train)),
        "n_val": int(len(x_val)),
    }
    return probe
