"""Train the Gemma-3-270M LoRA regression student on the sustainability split, compare it with MiniLM, time it.

One prepared run for a lent GPU (the exact command and the install step are in docs/student.md):

    python bench/train_gemma_student.py --data sustainability.jsonl --epochs 3 --max-tokens 512

Steps: convert the GGUF once (models.gemma_gguf.prepare: float safetensors + the rebuilt SentencePiece tokenizer in
the user's cache) → the shared 80/10/10 split (models.training.split, seed 42) → `train_student` with
base_model="gemma-3-270m" (LoRA on q/k/v/o_proj in every layer, regression head on the last non-pad token, pad id 0,
fp32 weights + bf16 autocast on CUDA) → reload through `Student.load` (merged, bf16 on CUDA) → test MAE per dimension
and WA, per language (en / nl), next to the shipped MiniLM student on the same rows → articles/s by batch size.
Writes `bench/results/gemma_student_<device>.json` and the adapter to --out (copy it to
`filters/<filter>/v1/artifacts/student-gemma/` to serve it on GPU workers).

`--tiny` (CPU, about a minute after the first conversion): 16 train / 8 val / 8 test rows, 32 tokens, one epoch,
batch sizes 1 and 4 — checks the whole script end to end; `tests/models/test_gemma_student_bench.py` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filters.spec import resolve_spec  # noqa: E402
from models.gemma_gguf import GEMMA_ID, prepare  # noqa: E402
from models.metrics import mae_report  # noqa: E402
from models.student.config import StudentConfig  # noqa: E402
from models.student.model import Student  # noqa: E402
from models.training.data import load_dataset  # noqa: E402
from models.training.split import split_dataset  # noqa: E402
from models.training.student import train_student  # noqa: E402

RESULTS = ROOT / "bench" / "results"




def by_language(pred: np.ndarray, y: np.ndarray, rows: list[dict[str, Any]], dims: list[str],
                weights: list[float]) -> dict[str, Any]:
    """mae_report on all rows, per language (en, nl) and on scored rows (oracle gave some dimension > 0)."""
    langs = np.asarray([str(r.get("language") or "") for r in rows])
    scored = y.max(axis=1) > 0
    out: dict[str, Any] = {"all": mae_report(pred, y, dims, weights)}
    for lang in ("en", "nl"):
        for name, keep in ((lang, langs == lang), (f"scored/{lang}", (langs == lang) & scored)):
            if keep.any():
                out[name] = mae_report(pred[keep], y[keep], dims, weights)
    if "en" in out and "nl" in out:
        out["nl_over_en"] = out["nl"]["mae"] / out["en"]["mae"]
    return out


def throughput(student: Student, rows: list[dict[str, Any]], batch_sizes: list[int], n: int) -> dict[str, Any]:
    """Articles/s of `Student.predict` (tokenising included) at each batch size; OOM is recorded, not fatal."""
    cuda = student.device.type == "cuda"
    pool = (rows * (n // max(1, len(rows)) + 1))[:n]
    out: dict[str, Any] = {}
    student.predict(pool[: max(batch_sizes)], batch_size=max(batch_sizes))  # warm-up (kernels, allocator)
    for bs in batch_sizes:
        try:
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            student.predict(pool, batch_size=bs)
            if cuda:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            out[str(bs)] = {"articles_per_s": round(len(pool) / seconds, 1), "articles": len(pool),
                            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None}
        except torch.OutOfMemoryError:
            out[str(bs)] = {"error": "out of memory"}
            torch.cuda.empty_cache()
        print(f"batch {bs}: {out[str(bs)]}", flush=True)
    return out


def halve_adapter(out: Path) -> None:
    """Store the adapter's float32 tensors as float16 (5.9 → 3.0 MB: the filter's artifacts stay within 10 MB);
    PEFT casts them back to the model's dtype on load, and every figure below is measured on the halved file."""
    from safetensors.torch import load_file, save_file

    path = out / "adapter_model.safetensors"
    tensors = {k: (v.half() if v.dtype == torch.float32 else v) for k, v in load_file(str(path)).items()}
    save_file(tensors, str(path), metadata={"format": "pt"})


def score_minilm(args: argparse.Namespace) -> None:
    """The shipped MiniLM student's test MAE per language (what the Gemma student has to beat), on this machine."""
    spec = resolve_spec(args.filter)
    data = load_dataset(args.data, spec)
    split = split_dataset(data, spec.weights, seed=42)
    test = data.subset(split.test).student_rows()
    started = time.perf_counter()
    pred = Student.load(args.minilm).predict(test, batch_size=32)
    report = {"student": args.minilm, "test": by_language(pred, data.labels[split.test], test, spec.dimension_names,
                                                          spec.weights),
              "scoring_articles_per_s": round(len(test) / (time.perf_counter() - started), 1)}
    path = Path(args.results) if args.results else RESULTS / "minilm_student_by_language.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    t = report["test"]
    print(f"MiniLM student test MAE {t['all']['mae']:.3f} (en {t['en']['mae']:.3f}, nl {t['nl']['mae']:.3f}) -> {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/work/shared/data/sustainability.jsonl")
    ap.add_argument("--filter", default="sustainability/v1")
    ap.add_argument("--out", default=str(ROOT / "runs" / "gemma_student"))
    ap.add_argument("--minilm", default=str(ROOT / "filters/sustainability/v1/artifacts/student"),
                    help="the MiniLM student to compare with on the same test rows ('' to skip)")
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--lora-alpha", type=int, default=32)
    ap.add_argument("--bench-batch-sizes", default="1,8,32,128")
    ap.add_argument("--bench-articles", type=int, default=512)
    ap.add_argument("--results", default=None, help="JSON path (default bench/results/gemma_student_<device>.json)")
    ap.add_argument("--tiny", action="store_true", help="CPU smoke run: a few rows, 32 tokens, one epoch")
    ap.add_argument("--pilot", type=int, default=0, help="CPU learning check on this many random train rows")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--adapter-fp32", dest="adapter_fp16", action="store_false",
                    help="keep the adapter in float32 (default: float16, half the size)")
    ap.add_argument("--minilm-only", action="store_true",
                    help="only score the MiniLM student on the test split per language (CPU; the GPU run skips it)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.minilm_only:
        score_minilm(args)
        return
    cuda = torch.cuda.is_available()
    if not cuda and not (args.tiny or args.pilot):
        raise SystemExit("no CUDA device: the Gemma student trains on a GPU (about 1.5 articles/s forward on two CPU "
                         "cores); run with --tiny for a CPU smoke test")
    t0 = time.perf_counter()
    folder = prepare()
    prepare_s = time.perf_counter() - t0
    print(f"gemma folder {folder} ready in {prepare_s:.0f} s", flush=True)

    spec = resolve_spec(args.filter)
    data = load_dataset(args.data, spec)
    split = split_dataset(data, spec.weights, seed=42)
    idx = {"train": split.train, "val": split.val, "test": split.test}
    if args.tiny:
        rng = np.random.default_rng(0)
        idx = {k: np.sort(rng.choice(v, size=n, replace=False)) for (k, v), n in zip(idx.items(), (16, 8, 8),
                                                                                       strict=True)}
        args.max_tokens, args.epochs, args.batch_size = 32, 1, 4
        args.bench_batch_sizes, args.bench_articles = "1,4", 8
    elif args.pilot:  # a learning check on CPU: N random train rows, 64 val and 64 test rows
        rng = np.random.default_rng(0)
        idx = {k: np.sort(rng.choice(v, size=min(n, len(v)), replace=False))
               for (k, v), n in zip(idx.items(), (args.pilot, 64, 64), strict=True)}
        args.bench_batch_sizes, args.bench_articles = "1,8", 16
    train, val, test = (data.subset(i).student_rows() for i in (idx["train"], idx["val"], idx["test"]))
    y_test = data.subset(idx["test"]).labels
    dims, weights = spec.dimension_names, spec.weights
    print(f"split: train {len(train)}, val {len(val)}, test {len(test)}", flush=True)

    config = StudentConfig(
        base_model=GEMMA_ID, max_tokens=args.max_tokens, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        lora_r=args.lora_r, lora_alpha=args.lora_alpha, train_layers=0, pooling="cls", threads=args.threads,
    )
    t1 = time.perf_counter()
    metrics = train_student(spec, train, val, args.out, config)
    train_s = time.perf_counter() - t1
    if args.adapter_fp16:
        halve_adapter(Path(args.out))

    student = Student.load(args.out)
    t2 = time.perf_counter()
    pred_test = student.predict(test, batch_size=32)
    score_s = time.perf_counter() - t2
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "tiny": args.tiny,
        "pilot": args.pilot,
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__,
                     "peft": __import__("peft").__version__},
        "prepare_s": round(prepare_s, 1),
        "split": {k: int(len(v)) for k, v in idx.items()},
        "config": config.as_dict(),
        "best_epoch": metrics["best_epoch"],
        "history": metrics["history"],
        "trainable_parameters": metrics.get("trainable_parameters"),
        "train_s": round(train_s, 1),
        "adapter_bytes": sum(p.stat().st_size for p in Path(args.out).iterdir() if p.is_file()),
        "gemma": {"test": by_language(pred_test, y_test, test, dims, weights),
                  "scoring_articles_per_s": round(len(test) / score_s, 1)},
        "train_mean": by_language(np.tile(data.subset(idx["train"]).labels.mean(0), (len(test), 1)), y_test, test,
                                  dims, weights),
        "fingerprint": student.fingerprint(),
    }
    if args.minilm and (Path(args.minilm) / "student.json").is_file():
        minilm = Student.load(args.minilm)
        pred_minilm = minilm.predict(test, batch_size=32)
        report["minilm"] = {"test": by_language(pred_minilm, y_test, test, dims, weights)}
        report["gemma_beats_minilm"] = report["gemma"]["test"]["all"]["mae"] < report["minilm"]["test"]["all"]["mae"]
        del minilm
    sizes = [int(b) for b in args.bench_batch_sizes.split(",")]
    report["gemma"]["throughput"] = throughput(student, test, sizes, args.bench_articles)

    name = "tiny" if args.tiny else report["device"].lower().replace(" ", "-") + (f"_pilot{args.pilot}" if args.pilot
                                                                                 else "")
    path = Path(args.results) if args.results else RESULTS / f"gemma_student_{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    summary = {k: report[k] for k in ("device", "best_epoch", "train_s")}
    summary["gemma_test_mae"] = round(report["gemma"]["test"]["all"]["mae"], 4)
    if "minilm" in report:
        summary["minilm_test_mae"] = round(report["minilm"]["test"]["all"]["mae"], 4)
    print(json.dumps(summary), f"-> {path}", flush=True)


if __name__ == "__main__":
    main()
