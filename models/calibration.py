"""Score post-processing: student/probe blend, per-dimension isotonic (JSON breakpoints, np.interp), label-grid snap.

The oracle scores on a fixed grid (whole or half points). Its labels are then best matched, in MAE, by a median on that
grid: rounding a dimension to the grid is offered as a last step, for Stage-2 and for Stage-1 (probe) scores, and kept
only where held-out MAE drops.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression

from models.errors import ModelsError
from models.metrics import mae, per_dimension_mae, wa_mae

CALIBRATION_FILE = "calibration.json"
MIN_LANGUAGE_ROWS = 60  # val rows a language needs before it may get its own blend


class CalibrationError(ModelsError, ValueError):
    """A `calibration.json` that does not fit the spec; the message names the file and the re-fit command."""


@dataclass
class Calibration:
    """x/y breakpoints per dimension; `applied` False means scores pass through unchanged (it did not help)."""

    dimension_names: list[str]
    x: list[list[float]]
    y: list[list[float]]
    applied: bool = True
    stats: dict[str, Any] = field(default_factory=dict)
    blend: list[float] | None = None  # per-dimension weight of the student vs the probe in Stage 2 (None = 1.0)
    snap: list[float] | None = None  # per-dimension grid step to round to (0 = keep continuous; None = never)
    probe_snap: list[float] | None = None  # the same for scores served from Stage 1 (the probe)
    # per-language student weights per dimension; languages not listed (or rows without one) use `blend`
    blend_by_language: dict[str, list[float]] | None = None

    def blend_weights(self, n_rows: int, n_dims: int, languages: Sequence[str | None] | None = None) -> np.ndarray:
        """(n_rows, n_dims) student weight of each row: its language's blend where fitted, else the global one."""
        base = np.asarray(self.blend if self.blend is not None else [1.0] * n_dims, dtype=np.float64)
        weights = np.tile(base, (n_rows, 1))
        if self.blend_by_language and languages is not None:
            for i, lang in enumerate(languages):
                if lang is not None and lang in self.blend_by_language:
                    weights[i] = self.blend_by_language[lang]
        return weights

    def combine(self, student_raw: np.ndarray, probe_scores: np.ndarray | None,
                languages: Sequence[str | None] | None = None) -> np.ndarray:
        """Stage-2 raw scores: `blend × student + (1 − blend) × probe` per dimension (student alone without blend);
        with `languages` (one per row, None = unknown) a row uses its language's blend where one was fitted."""
        student_raw = np.asarray(student_raw, dtype=np.float64)
        if (self.blend is None and not self.blend_by_language) or probe_scores is None:
            return student_raw
        a = self.blend_weights(student_raw.shape[0], student_raw.shape[1], languages)
        return a * student_raw + (1.0 - a) * np.asarray(probe_scores, dtype=np.float64)

    @classmethod
    def identity(cls, dimension_names: list[str], stats: dict[str, Any] | None = None) -> Calibration:
        return cls(list(dimension_names), [[0.0, 10.0]] * len(dimension_names), [[0.0, 10.0]] * len(dimension_names),
                   applied=False, stats=stats or {})

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Map raw (n, n_dims) Stage-2 scores: non-finite → 0; isotonic when applied; clamp to [0, 10]; then snap."""
        raw = _finite(raw)
        if self.applied:
            raw = np.column_stack([np.interp(raw[:, d], self.x[d], self.y[d]) for d in range(raw.shape[1])])
        return snap_to_grid(np.clip(raw, 0.0, 10.0), self.snap)

    def stage2(self, student_raw: np.ndarray, probe_scores: np.ndarray | None,
               languages: Sequence[str | None] | None = None, *, snap: bool = True) -> np.ndarray:
        """THE Stage-2 post-processing: blend with the probe (per row's language where fitted), isotonic, clamp, then
        the label-grid snap (`snap=False` leaves it out, for reports that show Stage 2 before the snap)."""
        cal = self if snap else replace(self, snap=None)
        return cal.apply(self.combine(student_raw, probe_scores, languages))

    def stage1(self, probe_scores: np.ndarray) -> np.ndarray:
        """Scores served from Stage 1: the probe's, non-finite → 0, clamped to [0, 10], snapped where kept."""
        return snap_to_grid(np.clip(_finite(probe_scores), 0.0, 10.0), self.probe_snap)

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / CALIBRATION_FILE
        data = {
            "method": "isotonic",
            "applied": self.applied,
            "dimensions": {d: {"x": x, "y": y} for d, x, y in zip(self.dimension_names, self.x, self.y, strict=True)},
            "blend": self.blend,
            "snap": self.snap,
            "probe_snap": self.probe_snap,
            "blend_by_language": self.blend_by_language,
            "stats": self.stats,
        }
        path.write_text(json.dumps(data, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: Path, dimension_names: list[str]) -> Calibration:
        path = directory / CALIBRATION_FILE
        if not path.is_file():
            return cls.identity(dimension_names)
        data = json.loads(path.read_text())
        dims = data["dimensions"]
        missing = [d for d in dimension_names if d not in dims]
        if missing:
            raise CalibrationError(
                f"{path}: no breakpoints for dimensions {missing}; re-fit with `distillery train-step calibrate`"
            )
        for key in ("snap", "probe_snap", "blend"):
            value = data.get(key)
            if value is not None and len(value) != len(dimension_names):
                raise CalibrationError(f"{path}: `{key}` has {len(value)} entries for {len(dimension_names)} "
                                       "dimensions; re-fit with `distillery train-step calibrate`")
        by_language = data.get("blend_by_language")
        if by_language is not None and not isinstance(by_language, dict):
            raise CalibrationError(f"{path}: `blend_by_language` must map a language to one weight per dimension; "
                                   "re-fit with `distillery train-step calibrate`")
        for lang, value in (by_language or {}).items():
            if not isinstance(value, list) or len(value) != len(dimension_names):
                n = len(value) if isinstance(value, list) else "no list of"
                raise CalibrationError(f"{path}: `blend_by_language.{lang}` has {n} entries for "
                                       f"{len(dimension_names)} dimensions; re-fit with `distillery train-step "
                                       "calibrate`")
        return cls(list(dimension_names), [dims[d]["x"] for d in dimension_names],
                   [dims[d]["y"] for d in dimension_names], bool(data.get("applied", True)), data.get("stats", {}),
                   data.get("blend"), data.get("snap"), data.get("probe_snap"), by_language or None)


def _finite(scores: np.ndarray) -> np.ndarray:
    """float64 copy with NaN → 0, +inf → 10, −inf → 0 (a broken model output must not reach a consumer)."""
    return np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0, posinf=10.0, neginf=0.0)


def snap_to_grid(scores: np.ndarray, steps: list[float] | None) -> np.ndarray:
    """Round each dimension with a step > 0 to the nearest multiple of that step (halves round to even)."""
    if not steps:
        return scores
    out = np.array(scores, dtype=np.float64, copy=True)
    for d, step in enumerate(steps):
        if step > 0:
            out[:, d] = np.round(out[:, d] / step) * step
    return out


def label_grid(labels: np.ndarray) -> float:
    """The oracle's score step: 1.0 when every label is a whole number, 0.5 for half points, else 0 (no grid)."""
    labels = np.asarray(labels, dtype=np.float64)
    for step in (1.0, 0.5):
        if labels.size and np.allclose(labels / step, np.round(labels / step), atol=1e-6):
            return step
    return 0.0


def fit_snap(pred: np.ndarray, target: np.ndarray, step: float) -> list[float]:
    """Per dimension: `step` where rounding `pred` to the grid lowers MAE against `target`, else 0."""
    if step <= 0:
        return [0.0] * pred.shape[1]
    snapped = snap_to_grid(pred, [step] * pred.shape[1])
    return [step if mae(snapped[:, d], target[:, d]) < mae(pred[:, d], target[:, d]) else 0.0
            for d in range(pred.shape[1])]


def fit_isotonic(raw: np.ndarray, target: np.ndarray, dimension_names: list[str]) -> Calibration:
    """Fit one increasing isotonic map per dimension (`out_of_bounds='clip'`), keep its breakpoints."""
    xs, ys = [], []
    for d in range(raw.shape[1]):
        iso = IsotonicRegression(y_min=0.0, y_max=10.0, out_of_bounds="clip", increasing=True)
        iso.fit(raw[:, d], target[:, d])
        xs.append([round(float(v), 5) for v in iso.X_thresholds_])
        ys.append([round(float(v), 5) for v in iso.y_thresholds_])
    return Calibration(list(dimension_names), xs, ys, applied=True)


def fit_and_select(
    fit_raw: np.ndarray, fit_target: np.ndarray, check_raw: np.ndarray, check_target: np.ndarray,
    dimension_names: list[str],
) -> Calibration:
    """Fit on one held-out split, keep it only if it lowers MAE on another held-out split (else identity)."""
    cal = fit_isotonic(fit_raw, fit_target, dimension_names)
    clamped, calibrated = np.clip(check_raw, 0, 10), cal.apply(check_raw)
    before, after = mae(clamped, check_target), mae(calibrated, check_target)
    dim_before = per_dimension_mae(clamped, check_target, dimension_names)
    dim_after = per_dimension_mae(calibrated, check_target, dimension_names)
    per_dim = {d: {"mae_before": dim_before[d], "mae_after": dim_after[d], "n_breakpoints": len(cal.x[i])}
               for i, d in enumerate(dimension_names)}
    stats = {"n_fit": int(len(fit_raw)), "n_check": int(len(check_raw)), "mae_before": before, "mae_after": after,
             "per_dimension": per_dim}
    if after < before:
        cal.stats = stats
        return cal
    ident = Calibration.identity(dimension_names, stats)
    return ident


def fit_blend(student_raw: np.ndarray, probe_scores: np.ndarray, target: np.ndarray,
              grid: np.ndarray | None = None) -> list[float]:
    """Per-dimension student weight (0..1 in steps of 0.1) minimising MAE of the mix on held-out rows."""
    grid = np.linspace(0, 1, 11) if grid is None else grid
    out = []
    for d in range(target.shape[1]):
        maes = [mae(np.clip(a * student_raw[:, d] + (1 - a) * probe_scores[:, d], 0, 10), target[:, d]) for a in grid]
        out.append(round(float(grid[int(np.argmin(maes))]), 2))
    return out


def fit_language_blends(student_raw: np.ndarray, probe_scores: np.ndarray, target: np.ndarray,
                        languages: Sequence[str | None], halves: tuple[np.ndarray, np.ndarray], global_oof: np.ndarray,
                        min_rows: int = MIN_LANGUAGE_ROWS) -> tuple[dict[str, list[float]], dict[str, Any], np.ndarray]:
    """Per-language blends: for each language with >= `min_rows` rows, a blend fitted on that language's rows of one
    half and measured on the other (both ways); kept only where this cross-fitted MAE beats `global_oof` (the global
    blend's out-of-fold scores) on that language. Returns the kept weights, stats per language and the out-of-fold
    scores with the kept languages' rows replaced."""
    langs = np.asarray([lang if lang is not None else "" for lang in languages], dtype=object)
    oof = np.array(global_oof, dtype=np.float64, copy=True)
    kept: dict[str, list[float]] = {}
    stats: dict[str, Any] = {}
    for lang in sorted({str(v) for v in langs if v}):
        rows = langs == lang
        if int(rows.sum()) < min_rows:
            continue
        own = np.zeros_like(oof)
        for a, b in (halves, halves[::-1]):
            a_l, b_l = a[rows[a]], b[rows[b]]
            w = np.asarray(fit_blend(student_raw[a_l], probe_scores[a_l], target[a_l]))
            own[b_l] = np.clip(w * student_raw[b_l] + (1 - w) * probe_scores[b_l], 0, 10)
        before, after = mae(global_oof[rows], target[rows]), mae(own[rows], target[rows])
        stats[lang] = {"n": int(rows.sum()), "cross_fit_mae_global": before, "cross_fit_mae_own": after,
                       "kept": after < before}
        if after < before:
            kept[lang] = fit_blend(student_raw[rows], probe_scores[rows], target[rows])
            oof[rows] = own[rows]
    return kept, stats, oof


def select_calibration(student_raw: np.ndarray, probe_scores: np.ndarray, target: np.ndarray, grid: float,
                       dimension_names: list[str], weights: list[float], seed: int = 42,
                       languages: Sequence[str | None] | None = None) -> Calibration:
    """Choose the Stage-2 post-processing on held-out rows (val: the student never trained on it).

    Candidates: the student alone, a per-dimension student/probe blend, isotonic on either; each scored by a 2-fold
    cross-fit (fit on one half, measure on the other, both ways). The best is kept. When that is the plain blend and
    `languages` (one per row) is given, a language with enough rows gets its own blend where that lowers its
    cross-fitted MAE (`fit_language_blends`). Then rounding to the oracle's label grid per dimension where it lowers
    the cross-fitted MAE. `stats` records every candidate's MAE.
    """
    yv = np.asarray(target, dtype=np.float64)
    raw, probe = np.asarray(student_raw, dtype=np.float64), np.asarray(probe_scores, dtype=np.float64)
    order = np.random.default_rng(seed).permutation(len(yv))
    halves = (order[: len(order) // 2], order[len(order) // 2:])
    oof = {k: np.zeros_like(yv) for k in ("student", "blend", "blend+isotonic", "isotonic")}
    for a, b in (halves, halves[::-1]):
        alpha = np.asarray(fit_blend(raw[a], probe[a], yv[a]))
        mix_a, mix_b = alpha * raw[a] + (1 - alpha) * probe[a], alpha * raw[b] + (1 - alpha) * probe[b]
        oof["student"][b] = np.clip(raw[b], 0, 10)
        oof["blend"][b] = np.clip(mix_b, 0, 10)
        oof["blend+isotonic"][b] = fit_isotonic(mix_a, yv[a], dimension_names).apply(mix_b)
        oof["isotonic"][b] = fit_isotonic(raw[a], yv[a], dimension_names).apply(raw[b])
    cross = {k: mae(v, yv) for k, v in oof.items()}
    best = min(cross, key=cross.__getitem__)
    chosen_oof = oof[best]
    by_language: dict[str, list[float]] = {}
    language_stats: dict[str, Any] = {}
    if best == "blend" and languages is not None:
        by_language, language_stats, chosen_oof = fit_language_blends(raw, probe, yv, languages, halves, oof["blend"])
    snap = fit_snap(chosen_oof, yv, grid)
    snapped = snap_to_grid(chosen_oof, snap)
    blend = fit_blend(raw, probe, yv) if best.startswith("blend") else None
    base = (np.asarray(blend) * raw + (1 - np.asarray(blend)) * probe) if blend is not None else raw
    iso = best.endswith("isotonic")
    cal = fit_isotonic(base, yv, dimension_names) if iso else Calibration.identity(dimension_names)
    cal.applied, cal.blend, cal.snap = iso, blend, (snap if any(snap) else None)
    cal.blend_by_language = by_language or None
    cal.stats = {"fitted_on": "val", "n_fit": int(len(raw)), "selection": "2-fold cross-fit on val",
                 "cross_fit_mae": cross, "chosen": best,
                 "mae_before": cross["blend" if blend is not None else "student"], "mae_after": mae(chosen_oof, yv),
                 "n_check": int(len(raw)), "label_grid": grid,
                 "snap_cross_fit": {"mae": mae(snapped, yv), "wa_mae_before": wa_mae(chosen_oof, yv, weights),
                                    "wa_mae_after": wa_mae(snapped, yv, weights)}}
    if language_stats:
        cal.stats["blend_by_language"] = language_stats
    return cal
