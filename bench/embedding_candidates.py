"""Which shared embedding for a multilingual stream: probe MAE per language and articles/s per packaged encoder.

Usage (each step caches under runs/embedding_candidates/, so re-runs never re-embed):
    python bench/embedding_candidates.py embed --candidate use-multilingual-v3 --data sustainability.jsonl
    python bench/embedding_candidates.py compare --data sustainability.jsonl
    python bench/embedding_candidates.py speed --input unlabelled_articles.jsonl --limit 200

`embed` embeds the same stratified subsample for every candidate (N train rows + the full val and test splits of the
training split, `models.training.split.split_dataset`, seed 42) through the shared `Encoder` and THE recipe.
`compare` trains the shipped probe recipe (models/probe.py) on each candidate's vectors and reports test MAE per
language (with counts), on all rows and on "scored" rows (the oracle gave at least one dimension > 0).
`speed` embeds the same articles with every candidate in turn (same process, interleaved rounds) and reports
articles/s. Results: bench/results/embedding_candidates.json (+ .png).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filters.spec import resolve_spec  # noqa: E402
from models.embedding import DEFAULT_MODEL_ID, Encoder  # noqa: E402
from models.training.data import load_dataset, load_rows, to_article  # noqa: E402
from models.training.split import split_dataset  # noqa: E402

CACHE = ROOT / "runs" / "embedding_candidates"
RESULTS = ROOT / "bench" / "results" / "embedding_candidates.json"
ALIASES = {"minilm": DEFAULT_MODEL_ID}


def model_id(name: str) -> str:
    return ALIASES.get(name, name)


def subsample(args: argparse.Namespace) -> tuple[Any, Any, dict[str, np.ndarray]]:
    """The spec, dataset and index sets (train subsample, val, test) every candidate embeds."""
    spec = resolve_spec(args.filter)
    data = load_dataset(args.data, spec)
    split = split_dataset(data, spec.weights)
    rng = np.random.default_rng(0)
    train = np.sort(rng.choice(split.train, size=min(args.train_rows, len(split.train)), replace=False))
    return spec, data, {"train": train, "val": split.val, "test": split.test}


def cache_path(name: str, data_path: str, n_train: int) -> Path:
    return CACHE / f"{Path(data_path).stem}-{n_train}-{name.replace('/', '_')}.npz"


def cmd_embed(args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm

    _, data, parts = subsample(args)
    idx = np.concatenate([parts["train"], parts["val"], parts["test"]])
    out = cache_path(args.candidate, args.data, args.train_rows)
    if out.exists():
        print(f"cached: {out}")
        return
    enc = Encoder.shared(model_id(args.candidate))
    texts = enc.texts([data.articles[i] for i in idx])
    vecs, started = [], time.perf_counter()
    for i in tqdm(range(0, len(texts), 64), desc=f"embed {args.candidate}"):
        vecs.append(enc.encode_texts(texts[i:i + 64]))
    seconds = time.perf_counter() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, idx=idx, vecs=np.concatenate(vecs), seconds=seconds, fingerprint=json.dumps(enc.fingerprint()))
    print(f"{args.candidate}: {len(idx)} articles in {seconds:.0f} s ({len(idx) / seconds:.1f}/s) -> {out}")


def per_language(pred: np.ndarray, ref: np.ndarray, w: np.ndarray, langs: np.ndarray) -> dict[str, Any]:
    """Per-dimension and WA MAE for all rows and per language (en, nl, other), on all and on scored rows."""
    scored = ref.max(axis=1) > 0
    out: dict[str, Any] = {}
    for where, keep in (("all", np.ones(len(ref), bool)), ("scored", scored)):
        for lang in ("all", "en", "nl"):
            m = keep & ((langs == lang) if lang != "all" else True)
            if not m.any():
                continue
            out[f"{where}/{lang}"] = {
                "n": int(m.sum()),
                "mae": float(np.abs(pred[m] - ref[m]).mean()),
                "wa_mae": float(np.abs(pred[m] @ w - ref[m] @ w).mean()),
            }
    for where in ("all", "scored"):
        en, nl = out.get(f"{where}/en"), out.get(f"{where}/nl")
        if en and nl:
            out[f"{where}/nl_over_en"] = nl["mae"] / en["mae"]
    return out


def cmd_compare(args: argparse.Namespace) -> None:
    import torch

    from models.probe import ProbeConfig, train_probe

    torch.set_num_threads(1)
    spec, data, parts = subsample(args)
    w = np.asarray(spec.weights) / np.sum(spec.weights)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    quality = results.setdefault("quality", {})
    tag = "" if args.train_rows == 2000 else f"/train{args.train_rows}"  # keys of other subsamples stay apart
    for name in args.candidates.split(","):
        paths = [cache_path(n, args.data, args.train_rows) for n in name.split("+")]  # a+b = concatenated vectors
        if not all(p.exists() for p in paths):
            print(f"{name}: no cached vectors at {paths}; run `embed --candidate NAME` first")
            continue
        loaded = [np.load(p) for p in paths]
        x = {p: np.hstack([c["vecs"][[{int(i): k for k, i in enumerate(c["idx"])}[int(j)] for j in parts[p]]]
                           for c in loaded]) for p in parts}
        cached = {"idx": loaded[0]["idx"], "seconds": sum(float(c["seconds"]) for c in loaded),
                  "fingerprint": json.dumps([json.loads(str(c["fingerprint"])) for c in loaded])}
        y = {p: data.labels[parts[p]] for p in parts}
        arts = {p: [data.articles[i] for i in parts[p]] for p in parts}
        for variant, meta in (("probe", True), ("probe_no_metadata", False)):
            if variant != "probe" and not args.ablate:
                continue
            probe = train_probe(x["train"], y["train"], x["val"], y["val"], spec.dimension_names, spec.weights,
                                ProbeConfig(metadata=meta), arts["train"], arts["val"])
            pred = np.clip(probe.predict(x["test"], arts["test"]), 0, 10)
            langs = np.asarray([a.get("language", "") for a in arts["test"]])
            row = per_language(pred, y["test"], w, langs)
            # cheap language lever: per-language, per-dimension median residual on val, added on test
            val_pred = np.clip(probe.predict(x["val"], arts["val"]), 0, 10)
            val_langs = np.asarray([a.get("language", "") for a in arts["val"]])
            shifted = pred.copy()
            for lang in ("en", "nl"):
                if (val_langs == lang).sum() >= 20:
                    shift = np.median(y["val"][val_langs == lang] - val_pred[val_langs == lang], axis=0)
                    shifted[langs == lang] = np.clip(pred[langs == lang] + shift, 0, 10)
            row["language_shift"] = per_language(shifted, y["test"], w, langs)
            row.update(val_mae=probe.metrics["val_mae"], n_train=int(len(x["train"])),
                       dimension=int(x["train"].shape[1]), embed_rate=float(len(cached["idx"]) / cached["seconds"]),
                       fingerprint=json.loads(str(cached["fingerprint"])))
            quality[f"{name}/{variant}{tag}"] = row
            print(f"{name}/{variant}: test MAE all {row['all/all']['mae']:.3f} en {row['all/en']['mae']:.3f} "
                  f"nl {row['all/nl']['mae']:.3f} (nl/en {row['all/nl_over_en']:.2f}); scored en "
                  f"{row['scored/en']['mae']:.3f} nl {row['scored/nl']['mae']:.3f} "
                  f"(nl/en {row['scored/nl_over_en']:.2f}); WA {row['all/all']['wa_mae']:.3f}; with language shift "
                  f"en {row['language_shift']['all/en']['mae']:.3f} nl {row['language_shift']['all/nl']['mae']:.3f}")
    shipped = ROOT / "filters" / spec.name / f"v{spec.version}" / "artifacts"
    minilm_caches = sorted(CACHE.glob(f"{Path(args.data).stem}-*-minilm.npz"))  # any subsample: all hold the test split
    if args.shipped and (shipped / "probe.json").is_file() and minilm_caches:
        minilm_cache = minilm_caches[0]
        from models.probe import Probe

        c = np.load(minilm_cache)
        pos = {int(i): k for k, i in enumerate(c["idx"])}
        test_arts = [data.articles[i] for i in parts["test"]]
        pred = np.clip(Probe.load(shipped).predict(c["vecs"][[pos[int(i)] for i in parts["test"]]], test_arts), 0, 10)
        langs = np.asarray([a.get("language", "") for a in test_arts])
        quality["minilm/shipped_probe_full_train"] = per_language(pred, data.labels[parts["test"]], w, langs)
        print(f"shipped MiniLM probe (full train): {json.dumps(quality['minilm/shipped_probe_full_train'])}")
    mean_pred = np.tile(data.labels[parts["train"]].mean(0), (len(parts["test"]), 1))
    test_langs = np.asarray([data.articles[i].get("language", "") for i in parts["test"]])
    quality[f"train_mean{tag}"] = per_language(mean_pred, data.labels[parts["test"]], w, test_langs)
    results[f"subsample{tag}"] = {"data": Path(args.data).name, "train_rows": args.train_rows,
                            "val": int(len(parts["val"])), "test": int(len(parts["test"]))}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    plot(results)


def cmd_speed(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    os.environ["DISTILLERY_EMBEDDING_THREADS"] = str(args.threads)
    rows = load_rows(args.input)[: args.limit]
    arts = [to_article(r) for r in rows]
    encoders = {name: Encoder.shared(model_id(name)) for name in args.candidates.split(",")}
    texts = {name: enc.texts(arts) for name, enc in encoders.items()}
    for name, enc in encoders.items():
        enc.encode_texts(texts[name][:8])  # warm-up
    times: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(args.rounds):
        for name, enc in encoders.items():
            started = time.perf_counter()
            enc.encode_texts(texts[name], batch_size=32)
            times[name].append(time.perf_counter() - started)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    speed = results.setdefault("speed", {})
    for name, ts in times.items():
        rate = len(arts) / min(ts)
        speed[name] = {"articles_per_s": rate, "articles": len(arts), "rounds": args.rounds, "threads": args.threads,
                       "input": Path(args.input).name, "load_avg": os.getloadavg()[0]}
        print(f"{name}: {rate:.1f} articles/s (best of {args.rounds}, {len(arts)} articles, {args.threads} threads)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    plot(results)


def plot(results: dict[str, Any]) -> None:
    """Per-language test MAE and articles/s side by side (bench/results/embedding_candidates.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quality = {k.split("/")[0]: v for k, v in results.get("quality", {}).items() if k.endswith("/probe")}
    if not quality:
        return
    names = list(quality)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    xs = np.arange(len(names))
    for k, lang in enumerate(("en", "nl")):
        a.bar(xs + (k - 0.5) * 0.38, [quality[n][f"scored/{lang}"]["mae"] for n in names], 0.38, label=lang)
    a.set_xticks(xs, names, rotation=15)
    a.set_ylabel("probe test MAE per dimension (scored rows)")
    a.legend()
    speed = results.get("speed", {})
    b.bar(xs, [speed.get(n, {}).get("articles_per_s", 0) for n in names])
    b.set_xticks(xs, names, rotation=15)
    b.set_ylabel("articles/s (embedding only, this CPU)")
    fig.tight_layout()
    fig.savefig(RESULTS.with_suffix(".png"), dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("embed", "compare"):
        p = sub.add_parser(name)
        p.add_argument("--data", default="/work/shared/data/sustainability.jsonl")
        p.add_argument("--filter", default="sustainability")
        p.add_argument("--train-rows", type=int, default=2000)
        if name == "embed":
            p.add_argument("--candidate", required=True, help="minilm, use-multilingual-v3, multilingual-e5-small-q4")
        else:
            p.add_argument("--candidates", default="minilm,use-multilingual-v3,multilingual-e5-small-q4")
            p.add_argument("--ablate", action="store_true", help="also train without the source/language columns")
            p.add_argument("--shipped", action="store_true", help="also score the shipped probe on the MiniLM vectors")
    p = sub.add_parser("speed")
    p.add_argument("--input", default="/work/shared/data/unlabelled_articles.jsonl")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--candidates", default="minilm,use-multilingual-v3,multilingual-e5-small-q4")
    args = parser.parse_args()
    {"embed": cmd_embed, "compare": cmd_compare, "speed": cmd_speed}[args.cmd](args)


if __name__ == "__main__":
    main()
