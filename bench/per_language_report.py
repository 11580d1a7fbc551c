"""A trained filter's test-split report per language: the pipeline's own evaluation run on each language's rows.

Usage: python bench/per_language_report.py --filter seece --data /work/shared/data/seece_energy_tech.jsonl
Same split (seed 42), same objects and sections as `distillery train-step evaluate` (probe, Stage 1 as served,
student, hybrid as served), once for all test rows and once per language with at least --min-rows rows; plus each
language's train-mean predictor. Writes filters/<name>/v<N>/artifacts/test_report_by_language.json and prints a
table. The manifest checksums every file of the folder, so re-list it afterwards: `distillery train-step split`
then `train-step evaluate` (which re-ties reference.json to the new manifest).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filters.spec import resolve_served  # noqa: E402
from models.embedding import Encoder  # noqa: E402
from models.evaluation.report import evaluate  # noqa: E402
from models.filter_models import FilterModels  # noqa: E402
from models.pipeline import Pipeline  # noqa: E402
from models.training.data import load_dataset  # noqa: E402
from models.training.split import split_dataset  # noqa: E402

SECTIONS = ("probe", "probe_served", "student", "hybrid")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--filter", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--min-rows", type=int, default=10)
    args = ap.parse_args()
    spec = resolve_served(args.filter)
    data = load_dataset(args.data, spec)
    split = split_dataset(data, spec.weights)
    encoder = Encoder.shared()
    fm = FilterModels.load(spec, encoder)
    pipe = Pipeline(encoder, {spec.name: fm}, None, apply_prefilter=False)
    langs = np.asarray([a.get("language", "") for a in data.articles])
    w = np.asarray(spec.weights)
    out: dict[str, Any] = {"filter": spec.key, "data_sha256": data.data_hash, "split": "test", "languages": {}}
    groups = {"all": split.test}
    for lang in sorted(set(langs[split.test])):
        rows = split.test[langs[split.test] == lang]
        if len(rows) >= args.min_rows:
            groups[lang] = rows
    for name, rows in groups.items():
        report = evaluate(pipe, spec.name, data.subset(rows), n_boot=200)
        train = split.train if name == "all" else split.train[langs[split.train] == name]
        mean = data.labels[train].mean(0)
        entry: dict[str, Any] = {k: {m: report[k][m] for m in ("mae", "wa_mae", "tier_accuracy")} for k in SECTIONS
                                 if report.get(k)}
        entry["n"] = int(len(rows))
        entry["mean_predictor"] = {"mae": float(np.abs(data.labels[rows] - mean).mean()),
                                   "wa_mae": float(np.abs((data.labels[rows] - mean) @ w).mean())}
        out["languages"][name] = entry
        cells = "  ".join(f"{k} {entry[k]['mae']:.3f}" for k in (*SECTIONS, "mean_predictor") if k in entry)
        print(f"{name:>4} (n={entry['n']}): {cells}")
    path = spec.artifacts_dir / "test_report_by_language.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
