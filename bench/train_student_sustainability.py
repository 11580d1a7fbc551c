"""Train and evaluate the sustainability v1 Stage-2 student on the shared 80/10/10 split (speed probe or full run).

    python bench/train_student_sustainability.py --data /work/shared/data/sustainability.jsonl --speed 200
    python bench/train_student_sustainability.py --data /work/shared/data/sustainability.jsonl --max-tokens 128 \\
        --epochs 4 --out filters/sustainability/v1/artifacts/student

The split is `models.training.split.split_dataset` (the one the probe, router and calibration use). After training the
kept epoch is reloaded through `Student.load` (the inference path) and scored on val and test; figures go to
`bench/results/student_sustainability_v1.json`; `--predictions FILE` writes raw val/test predictions (ids + floats)
outside the repo.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filters.spec import resolve_spec  # noqa: E402
from models.metrics import mae_report  # noqa: E402
from models.student.config import StudentConfig  # noqa: E402
from models.student.model import Student  # noqa: E402
from models.training.data import load_dataset  # noqa: E402
from models.training.split import split_dataset  # noqa: E402
from models.training.student import train_student  # noqa: E402

RESULTS = ROOT / "bench" / "results"




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="labelled JSONL (sustainability.jsonl)")
    ap.add_argument("--filter", default="sustainability/v1")
    ap.add_argument("--out", default=str(ROOT / "filters/sustainability/v1/artifacts/student"))
    ap.add_argument("--speed", type=int, default=0, help="only time training on this many train rows, then exit")
    ap.add_argument("--pilot", type=int, default=0, help="train on this many train rows, score 300 val rows, then exit")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is faster than 2 on a contended CPU)")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--lora-alpha", type=int, default=32)
    ap.add_argument("--targets", default="query,key,value,intermediate.dense,output.dense")
    ap.add_argument("--train-layers", type=int, default=2, help="LoRA in the top N layers only (0 = all layers)")
    ap.add_argument("--pooling", default="mean", choices=["cls", "mean"])
    ap.add_argument("--sample-weight-scale", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=42, help="student seed (the data split stays seed 42)")
    ap.add_argument("--tag", default="student_sustainability_v1")
    ap.add_argument("--predictions", default=None,
                    help="also write raw val/test predictions (ids + floats) here; keep it outside the repo")
    ap.add_argument("--eval-only", action="store_true", help="score val/test with the adapter already in --out")
    args = ap.parse_args()

    spec = resolve_spec(args.filter)
    data = load_dataset(args.data, spec)
    split = split_dataset(data, spec.weights, seed=42)
    train, val, test = (data.subset(idx).student_rows() for idx in (split.train, split.val, split.test))
    print(f"split: train {len(train)}, val {len(val)}, test {len(test)} (data sha256 {data.data_hash[:12]})")
    config = StudentConfig(
        max_tokens=args.max_tokens, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        lora_r=args.lora_r, lora_alpha=args.lora_alpha, target_modules=tuple(args.targets.split(",")),
        sample_weight_scale=args.sample_weight_scale, train_layers=args.train_layers or None, threads=args.threads,
        pooling=args.pooling, seed=args.seed,
    )
    torch.set_num_threads(args.threads)
    if args.pilot:
        rng = np.random.default_rng(0)  # the split keeps file order, which is grouped by source: sample at random
        sub_train = [train[i] for i in rng.permutation(len(train))[: args.pilot]]
        sub_val = [val[i] for i in rng.permutation(len(val))[:300]]
        m = train_student(spec, sub_train, sub_val, f"/tmp/student_pilot_{args.pooling}", config)
        print(json.dumps({"pilot": args.pilot, "lr": args.lr, "pooling": args.pooling,
                          "train_layers": args.train_layers, "epochs": args.epochs,
                          "best_epoch": m["best_epoch"], "val_mae": round(m["val"]["mae"], 4),
                          "val_wa_mae": round(m["val"]["wa_mae"], 4), "cache_s": m["cache_s"],
                          "train_s": m["train_s"]}))
        return
    if args.speed:
        steps = max(1, args.speed // args.batch_size)
        config.max_steps, config.epochs = steps, 1
        t0 = time.perf_counter()
        m = train_student(spec, train[: args.speed], val[:64], f"/tmp/student_speed_{args.max_tokens}", config)
        wall = time.perf_counter() - t0
        per_1000 = m["train_s"] / (steps * args.batch_size) * 1000
        print(json.dumps({"max_tokens": args.max_tokens, "train_layers": args.train_layers,
                          "rows": steps * args.batch_size, "train_s": m["train_s"], "cache_s": m["cache_s"],
                          "wall_s": round(wall, 1), "train_s_per_1000_rows": round(per_1000, 1),
                          "trainable": m["trainable_parameters"]}))
        return

    t0 = time.perf_counter()
    if args.eval_only:
        meta = json.loads((Path(args.out) / "student.json").read_text(encoding="utf-8"))
        metrics, config = meta["metrics"], StudentConfig.from_dict(meta["config"])
    else:
        metrics = train_student(spec, train, val, args.out, config)
    train_wall = metrics.get("train_s") if args.eval_only else time.perf_counter() - t0
    student = Student.load(args.out)
    t1 = time.perf_counter()
    pred_val = student.predict(val, batch_size=32)
    pred_test = student.predict(test, batch_size=32)
    infer_s = time.perf_counter() - t1
    speed = {}
    for merge in (False, True):  # measure once whether merging LoRA into the weights pays off
        probe = Student.load(args.out, merge=merge)
        t2 = time.perf_counter()
        probe.predict(test[:128], batch_size=32)
        speed["merged" if merge else "unmerged"] = round(128 / (time.perf_counter() - t2), 1)
    y_val = data.subset(split.val).labels
    y_test = data.subset(split.test).labels
    report = {
        "filter": spec.key,
        "data": args.data,
        "data_sha256": data.data_hash,
        "split": {"train": len(train), "val": len(val), "test": len(test), "seed": 42},
        "config": config.as_dict(),
        "best_epoch": metrics["best_epoch"],
        "history": metrics["history"],
        "train_wall_s": round(train_wall, 1) if train_wall else None,
        "cache_s": metrics.get("cache_s"),
        "val": mae_report(pred_val, y_val, spec.dimension_names, spec.weights),
        "test": mae_report(pred_test, y_test, spec.dimension_names, spec.weights),
        "test_train_mean_baseline": mae_report(np.tile(data.subset(split.train).labels.mean(axis=0), (len(test), 1)),
                                               y_test, spec.dimension_names, spec.weights),
        "inference_articles_per_s": round((len(val) + len(test)) / infer_s, 1),
        "merged": student.merged,
        "articles_per_s_128_test_rows": speed,
        "fingerprint": student.fingerprint(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    preds = {
        "dimension_names": spec.dimension_names,
        "val": {"ids": [r["id"] for r in val], "raw": np.round(pred_val, 4).tolist()},
        "test": {"ids": [r["id"] for r in test], "raw": np.round(pred_test, 4).tolist()},
    }
    if args.predictions:  # row ids come from the third-party data: never into the repo
        Path(args.predictions).write_text(json.dumps(preds) + "\n", encoding="utf-8")
    print(json.dumps({k: report[k] for k in ("best_epoch", "train_wall_s", "val", "test")}, indent=2))


if __name__ == "__main__":
    main()
