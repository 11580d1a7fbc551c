"""Offline check of a per-language student/probe blend (the calibration's blend, fitted per language on val).

Needs a filter trained on the candidate embedding in a scratch folder (docs/models.md: /tmp/ml-sus-use), the
candidate's vectors cached by `bench/embedding_candidates.py embed --train-rows 6000`, and the calibrate step's
cached student val predictions (`$DISTILLERY_CACHE_DIR/runs/<filter>-v<N>/student_val_*.npy`). Prints test MAE per
language, before any snap, for the calibration's global blend, a per-language blend (per dimension, w in 0, 0.1 … 1,
chosen on that language's val rows), the student alone and the probe alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filters.spec import resolve_spec  # noqa: E402
from models.probe import Probe  # noqa: E402
from models.student import Student  # noqa: E402
from models.training.data import load_dataset  # noqa: E402
from models.training.split import split_dataset  # noqa: E402

GRID = np.linspace(0.0, 1.0, 11)


def best_weights(student: np.ndarray, probe: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-dimension blend weight of the student that minimises MAE on these rows."""
    return np.array([GRID[np.argmin([np.abs(w * student[:, k] + (1 - w) * probe[:, k] - y[:, k]).mean()
                                     for w in GRID])] for k in range(y.shape[1])])


def mae(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.abs(np.clip(pred, 0, 10) - y).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--filter", default="sustainability")
    ap.add_argument("--data", default="/work/shared/data/sustainability.jsonl")
    ap.add_argument("--artifacts", default="/tmp/ml-sus-use")
    ap.add_argument("--vectors", default=str(ROOT / "runs/embedding_candidates/"
                                                    "sustainability-6000-use-multilingual-v3.npz"))
    ap.add_argument("--student-val", required=True, help="the calibrate step's student_val_<digest>.npy")
    args = ap.parse_args()
    torch.set_num_threads(1)
    spec = resolve_spec(args.filter)
    data = load_dataset(args.data, spec)
    split = split_dataset(data, spec.weights)
    cached = np.load(args.vectors)
    pos = {int(i): k for k, i in enumerate(cached["idx"])}
    probe = Probe.load(Path(args.artifacts))

    def probe_scores(idx: np.ndarray) -> np.ndarray:
        vecs = cached["vecs"][[pos[int(i)] for i in idx]]
        return np.clip(probe.predict(vecs, [data.articles[i] for i in idx]), 0, 10)

    pv, pt = probe_scores(split.val), probe_scores(split.test)
    sv = np.load(args.student_val)
    st = Student.load(Path(args.artifacts) / "student").predict([data.articles[i] for i in split.test], batch_size=32)
    yv, yt = data.labels[split.val], data.labels[split.test]
    langs = np.asarray([a.get("language", "") for a in data.articles])
    lv, lt = langs[split.val], langs[split.test]
    blend = json.loads((Path(args.artifacts) / "calibration.json").read_text()).get("blend")
    wg = np.asarray(blend) if blend else np.ones(yt.shape[1])
    for lang in ("en", "nl"):
        w = best_weights(sv[lv == lang], pv[lv == lang], yv[lv == lang])
        m = lt == lang
        print(json.dumps({"language": lang, "n_val": int((lv == lang).sum()), "n_test": int(m.sum()),
                          "weights": w.round(1).tolist(), "global_blend": round(mae(wg * st[m] + (1 - wg) * pt[m],
                                                                                       yt[m]), 3),
                          "per_language_blend": round(mae(w * st[m] + (1 - w) * pt[m], yt[m]), 3),
                          "student": round(mae(st[m], yt[m]), 3), "probe": round(mae(pt[m], yt[m]), 3)}))


if __name__ == "__main__":
    main()
