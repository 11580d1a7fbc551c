"""Reference distributions for the drift detectors: `reference.json` saved next to a filter's artifacts."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from filters.jsonl import json_safe, write_json_atomic  # noqa: F401 - re-exported for monitor and cli
from models.reference import ServedReference, summarise_results
from monitoring.errors import MonitorReferenceError

REFERENCE_FILE = "reference.json"


def _floats(values: Any, where: str, path: Path) -> list[float]:
    if not isinstance(values, list):
        raise MonitorReferenceError(
            f"{path}: `{where}` must be a list of numbers; re-run `distillery train` to rewrite it"
        )
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise MonitorReferenceError(
            f"{path}: `{where}` holds a non-number; re-run `distillery train` to rewrite it"
        ) from None
    return [v for v in out if math.isfinite(v)]


@dataclass
class Reference(ServedReference):
    """What "normal" looked like when the artifact was evaluated, tied to that artifact's fingerprint: the fields
    of `models.reference.ServedReference` (written at training time) plus where it was loaded from, with strict
    validation on load.

    `weighted_average`: served WAs of stage1/stage2 results on the evaluation split; `scores`: calibrated
    per-dimension scores of the Stage-2 results; `residual_mean`/`residual_std`: student WA minus probe WA on
    escalated articles; `rates`: optional baselines (`escalation`, `prefilter_block`, `tier_share:<tier>`) as
    fractions; `heldout_mae`: served-WA MAE against the oracle on the test split (the spot-check's baseline).
    """

    path: str = ""

    @property
    def label(self) -> str:
        """How alerts name this reference: `artifact:<fingerprint>`."""
        return f"artifact:{self.fingerprint[:12]}" if self.fingerprint else "artifact"

    @classmethod
    def load(cls, path: str | Path) -> Reference:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise MonitorReferenceError(f"{path}: missing; run `distillery train` or let the monitor warm up") from None
        except json.JSONDecodeError as err:
            raise MonitorReferenceError(
                f"{path}: not valid JSON ({err}); delete it or re-run `distillery train`"
            ) from None
        if not isinstance(data, dict):
            raise MonitorReferenceError(f"{path}: expected a JSON object with `weighted_average` and `scores`")
        scores_raw = data.get("scores") or {}
        if not isinstance(scores_raw, dict):
            raise MonitorReferenceError(f"{path}: `scores` must map dimension names to lists of numbers")
        rates_raw = data.get("rates") or {}
        try:
            rates = {str(k): float(v) for k, v in dict(rates_raw).items()}
            r_mean = data.get("residual_mean")
            r_std = data.get("residual_std")
            r_mean = None if r_mean is None else float(r_mean)
            r_std = None if r_std is None else float(r_std)
            heldout = data.get("heldout_mae")
            heldout = None if heldout is None else float(heldout)
        except (TypeError, ValueError):
            raise MonitorReferenceError(f"{path}: `rates`, `residual_*` and `heldout_mae` must be numbers") from None
        return cls(
            weighted_average=_floats(data.get("weighted_average") or [], "weighted_average", path),
            scores={str(k): _floats(v, f"scores.{k}", path) for k, v in scores_raw.items()},
            residual_mean=r_mean,
            residual_std=r_std,
            fingerprint=str(data.get("fingerprint") or ""),
            rates=rates,
            heldout_mae=heldout,
            path=str(path),
        )

    @classmethod
    def from_results(
        cls,
        results: Iterable[Any],
        weights: Mapping[str, float],
        fingerprint: str,
        heldout_mae: float | None = None,
    ) -> Reference:
        """Build the reference from the results of scoring the evaluation split (Result objects or dicts).

        Call at training time with `Pipeline.score_batch` output on the test split, so the monitor compares
        production with what the same cascade served on held-out data. The statistics are
        `models.reference.summarise_results` (training writes the file without importing monitoring).
        """
        return cls(**asdict(summarise_results(results, weights, fingerprint, heldout_mae)))

    @classmethod
    def for_artifacts(cls, artifacts_dir: str | Path) -> Reference | None:
        """The reference saved in a filter's artifacts directory, or None when there is none."""
        path = Path(artifacts_dir) / REFERENCE_FILE
        return cls.load(path) if path.is_file() else None

    def save(self, path: str | Path) -> Path:
        """Write atomically (a reader never sees half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {k: v for k, v in asdict(self).items() if k != "path"}
        write_json_atomic(path, body)
        return path

    def summary(self) -> dict[str, Any]:
        """Sizes and means for the state report (not the raw lists)."""
        wa = self.weighted_average
        return {
            "source": self.path or "artifact",
            "fingerprint": self.fingerprint,
            "weighted_average_n": len(wa),
            "weighted_average_mean": sum(wa) / len(wa) if wa else None,
            "dimensions": sorted(self.scores),
            "residual_mean": self.residual_mean,
            "residual_std": self.residual_std,
            "rates": self.rates,
            "heldout_mae": self.heldout_mae,
        }
