"""The train steps (split → embed → probe → router → student → calibrate → curve → evaluate) over one work dir."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import KFold

from filters.spec import FilterSpec
from models.artifacts import MANIFEST, ArtifactError, manifest_digest, sha256_file, write_manifest
from models.calibration import Calibration, fit_blend, fit_isotonic, fit_snap, label_grid, snap_to_grid
from models.embedding import Encoder
from models.evaluation.curve import route_stats, sweep, write_curve
from models.probe import Probe, ProbeConfig, train_probe
from models.router import (
    Router,
    choose_operating_point,
    empirical_cdf,
    fit_classifier,
    normalise,
    oof_knn_classifier,
    oof_router_scores,
    route_statistic,
    router_features,
)
from models.training.cache import EmbeddingCache, cache_dir
from models.training.data import Dataset, load_dataset
from models.training.split import Split, split_dataset

log = logging.getLogger(__name__)

STEPS = ("split", "embed", "probe", "router", "student", "calibrate", "tiers", "curve", "evaluate")
REFERENCE = "reference.json"  # the monitor's reference (monitoring.reference.REFERENCE_FILE)


@dataclass
class TrainOptions:
    """Knobs of a training run (defaults are the shipped recipe)."""

    seed: int = 42
    folds: int = 5
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    router_c: float = 0.05
    knn_router_c: float = 0.01  # the knn_classifier's head (more features, stronger L2)
    knn_router_margin: float = 0.5  # the knn_classifier learns P(WA ≥ protected edge − margin)
    knn_router_min_train: int = 1000  # fewer training rows: no knn_classifier (20-NN statistics would be noise)
    fn_margin: float = 0.75  # choose the operating point at margin × the FN target (few positives: be conservative)
    student: Any | None = None  # models.student.StudentConfig; None = its defaults
    train_student: bool = True  # False: keep an existing artifacts/student/ (or none)
    student_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {"epochs": 1} on top of the config
    n_boot: int = 1000
    tier_c: float = 0.01  # L2 strength of the tier model's heads (models/training/tiers.py)


class TrainRun:
    """State shared by the steps: spec, data, split and embeddings; intermediate files live in a work dir."""

    def __init__(self, spec: FilterSpec, data_path: Path, out_dir: Path | None = None, *,
                 encoder: Encoder | None = None, options: TrainOptions | None = None,
                 workdir: Path | None = None) -> None:
        self.spec = spec
        self.data_path = Path(data_path)
        self.out_dir = out_dir or spec.artifacts_dir
        self.encoder = encoder or Encoder.shared()
        self.options = options or TrainOptions()
        self.workdir = workdir or cache_dir() / "runs" / f"{spec.name}-v{spec.version}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._data: Dataset | None = None
        self._split: Split | None = None
        self._emb: np.ndarray | None = None
        self.metrics: dict[str, Any] = self._load_json("metrics.json") or {}

    # -- helpers ---------------------------------------------------------------------------------------
    def _load_json(self, name: str) -> Any:
        path = self.workdir / name
        return json.loads(path.read_text()) if path.is_file() else None

    def _save_json(self, name: str, data: Any) -> None:
        (self.workdir / name).write_text(json.dumps(data, indent=2) + "\n")

    def _record(self, step: str, metrics: dict[str, Any]) -> dict[str, Any]:
        self.metrics[step] = metrics
        self._save_json("metrics.json", self.metrics)
        self.write_manifest()
        return metrics

    @property
    def data(self) -> Dataset:
        if self._data is None:
            self._data = load_dataset(self.data_path, self.spec)
        return self._data

    @property
    def split(self) -> Split:
        if self._split is None:
            stored = self._load_json("split.json")
            if stored and stored.get("data_sha256") == self.data.data_hash and stored.get("seed") == self.options.seed:
                self._split = Split.from_dict(stored)
            else:
                self.step_split()
        assert self._split is not None
        return self._split

    @property
    def embeddings(self) -> np.ndarray:
        if self._emb is None:
            self._emb = EmbeddingCache(self.encoder).embed(self.data.articles)
        return self._emb

    def rows(self, idx: np.ndarray) -> list[dict[str, Any]]:
        """Data rows for the student API: article fields + `scores`."""
        dims = self.spec.dimension_names
        return [{**self.data.articles[i], "scores": dict(zip(dims, map(float, self.data.labels[i]), strict=True))}
                for i in idx]

    def articles(self, idx: np.ndarray) -> list[dict[str, Any]]:
        return [self.data.articles[i] for i in idx]

    def positive(self, idx: np.ndarray) -> np.ndarray:
        return self.data.weighted_averages(self.spec.weights)[idx] >= self.spec.protected_threshold

    def write_manifest(self) -> dict[str, Any]:
        """Rewrite `manifest.json`. `reference.json` is listed but not checksummed: it carries the digest of this
        very manifest (the fingerprint stamped on served results), so hashing it here would be circular."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        student = None
        student_json = self.out_dir / "student" / "student.json"
        if student_json.is_file():
            meta = json.loads(student_json.read_text())
            student = {"recipe": meta.get("recipe_fingerprint"), "base_model": meta.get("base_model"),
                       "kind": meta.get("kind")}
        files = {str(p.relative_to(self.out_dir)): sha256_file(p) for p in sorted(self.out_dir.rglob("*"))
                 if p.is_file() and p.name != MANIFEST and p.relative_to(self.out_dir) != Path(REFERENCE)}
        reference = {"file": REFERENCE, "checksummed": False,
                     "tied_by": "its `fingerprint` = first 12 hex of this manifest's sha256 (Result.fingerprint); "
                                "any later manifest rewrite makes it stale and the monitor falls back to warm-up"}
        return write_manifest(
            self.out_dir, self.spec, embedding=self.encoder.fingerprint(), student=student,
            training_data={"path": str(self.data_path), "sha256": self.data.data_hash, "rows": len(self.data),
                           "split_seed": self.options.seed,
                           "split_sizes": {k: len(v) for k, v in self.split.as_dict().items()}},
            metrics=self.metrics, extra={"files": files, "reference": reference},
        )

    # -- steps -----------------------------------------------------------------------------------------
    def step_split(self) -> dict[str, Any]:
        split = split_dataset(self.data, self.spec.weights, seed=self.options.seed)
        self._split = split
        self._save_json("split.json", {**split.as_dict(), "data_sha256": self.data.data_hash,
                                       "seed": self.options.seed})
        wa = self.data.weighted_averages(self.spec.weights)
        info = {k: {"n": len(v), "protected": int((wa[v] >= self.spec.protected_threshold).sum())}
                for k, v in split.as_dict().items()}
        all_equal = int((self.data.labels.max(1) == self.data.labels.min(1)).sum())
        return self._record("split", {**info, "all_equal_rows": all_equal,
                                      "all_zero_rows": int((self.data.labels.max(1) == 0).sum())})

    def step_embed(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        emb = self.embeddings
        return self._record("embed", {"n": int(len(emb)), "dimension": int(emb.shape[1]),
                                      "seconds": round(time.perf_counter() - t0, 1), **self.encoder.fingerprint()})

    def step_probe(self) -> dict[str, Any]:
        """K-fold out-of-fold probe predictions over train (router features), then the shipped probe."""
        s, x, y, opt = self.split, self.embeddings, self.data.labels, self.options
        oof = np.zeros((len(s.train), y.shape[1]), dtype=np.float32)
        fold_cfg = ProbeConfig(**{**asdict(opt.probe), "seeds": opt.probe.seeds[:1]})
        from tqdm import tqdm

        folds = KFold(opt.folds, shuffle=True, random_state=opt.seed).split(s.train)
        arts = self.data.articles
        val_arts = [arts[i] for i in s.val]
        for tr, te in tqdm(list(folds), desc="probe out-of-fold", unit="fold"):
            p = train_probe(x[s.train[tr]], y[s.train[tr]], x[s.val], y[s.val], self.spec.dimension_names,
                            self.spec.weights, fold_cfg, [arts[i] for i in s.train[tr]], val_arts)
            oof[te] = p.predict(x[s.train[te]], [arts[i] for i in s.train[te]])
        np.save(self.workdir / "probe_oof.npy", oof)
        t0 = time.perf_counter()
        probe = train_probe(x[s.train], y[s.train], x[s.val], y[s.val], self.spec.dimension_names, self.spec.weights,
                            opt.probe, [arts[i] for i in s.train], val_arts)
        probe.save(self.out_dir)
        w = np.asarray(self.spec.weights)
        metrics = {**probe.metrics, "seconds": round(time.perf_counter() - t0, 1),
                   "oof_train_mae": float(np.abs(oof - y[s.train]).mean()),
                   "oof_train_wa_mae": float(np.abs(oof @ w - y[s.train] @ w).mean())}
        return self._record("probe", metrics)

    def step_router(self) -> dict[str, Any]:
        """Baseline (probe WA), classifier, kNN-ensemble and kNN-feature classifier routers; operating points
        chosen on out-of-fold train predictions + val (more protected articles than val alone), at `fn_margin` ×
        the spec's FN target. The router with the smallest Stage-2 share on that pool is shipped as `router`, the
        others beside it."""
        s, x, opt = self.split, self.embeddings, self.options
        probe = Probe.load(self.out_dir)
        oof = np.load(self.workdir / "probe_oof.npy")
        val_scores = probe.predict(x[s.val], self.articles(s.val))
        w = self.spec.weights
        wa_all = self.data.weighted_averages(w)
        pos_tr, pos_va = self.positive(s.train), self.positive(s.val)
        pool_pos = np.concatenate([pos_tr, pos_va])
        target = self.spec.hybrid.max_false_negative_rate * opt.fn_margin
        pt = self.spec.protected_threshold

        wa_pool = np.concatenate([oof @ np.asarray(w), probe.weighted_average(val_scores)])
        base = Router("wa_threshold", choose_operating_point(wa_pool, pool_pos, target), pt)
        f_tr = router_features(probe.standardise(x[s.train]), oof, w)
        f_va = router_features(probe.standardise(x[s.val]), val_scores, w)
        oof_logit, oof_knn = oof_router_scores(f_tr, pos_tr, x[s.train], wa_all[s.train], opt.folds, opt.router_c,
                                               opt.seed)
        coef, b = fit_classifier(f_tr, pos_tr, opt.router_c, opt.seed)
        clf = Router("classifier", 0.0, pt, coef, b)
        clf_pool = np.concatenate([1 / (1 + np.exp(-oof_logit)), clf.statistic(f_va, None)])
        clf = clf.with_threshold(choose_operating_point(clf_pool, pool_pos, target))
        ens = Router("ensemble", 0.0, pt, coef, b, bank=normalise(x[s.train]).astype(np.float16),
                     bank_wa=wa_all[s.train].astype(np.float16), cdf_p=empirical_cdf(oof_logit),
                     cdf_knn=empirical_cdf(oof_knn))
        ens_pool = np.concatenate([ens.ensemble_statistic(oof_logit, oof_knn),
                                   ens.statistic(f_va, None, x[s.val])])
        ens = ens.with_threshold(choose_operating_point(ens_pool, pool_pos, target))
        pools = {"wa_threshold": wa_pool, "classifier": clf_pool, "ensemble": ens_pool}
        routers = [base, clf, ens]
        if len(s.train) >= opt.knn_router_min_train:
            kprob, _, kcoef, kb = oof_knn_classifier(f_tr, x[s.train], wa_all[s.train], pt, opt.knn_router_margin,
                                                     opt.folds, opt.knn_router_c, opt.seed)
            kc = Router("knn_classifier", 0.0, pt, kcoef, kb, bank=ens.bank, bank_wa=ens.bank_wa)
            pools["knn_classifier"] = np.concatenate([kprob, kc.statistic(f_va, None, x[s.val])])
            routers.append(kc.with_threshold(choose_operating_point(pools["knn_classifier"], pool_pos, target)))

        metrics: dict[str, Any] = {"fn_target": self.spec.hybrid.max_false_negative_rate, "fn_selection": target,
                                   "selection_pool": {"n": int(len(pool_pos)), "protected": int(pool_pos.sum())}}
        if "knn_classifier" in pools:
            metrics["knn_classifier_target"] = pt - opt.knn_router_margin
        for r in routers:
            stat = pools[r.kind]
            r.metrics = {"selection": route_stats(stat, pool_pos, r.threshold),
                         "val": route_stats(stat[len(pos_tr):], pos_va, r.threshold)}
            metrics[r.kind] = r.metrics
        chosen = min(routers, key=lambda r: r.metrics["selection"]["stage2_share"])
        for old in self.out_dir.glob("router*"):
            old.unlink()
        chosen.save(self.out_dir, "router")
        for r in routers:
            if r is not chosen:
                r.save(self.out_dir, "router_baseline" if r is base else f"router_{r.kind}")
        metrics["shipped"] = chosen.kind
        return self._record("router", metrics)

    def step_student(self) -> dict[str, Any]:
        """Train the Stage-2 student through models.student (or keep the one already in artifacts/student/)."""
        student_dir = self.out_dir / "student"
        if not self.options.train_student:
            if (student_dir / "student.json").is_file():
                meta = json.loads((student_dir / "student.json").read_text())
                return self._record("student", {"kept_existing": True, **{k: meta.get(k) for k in ("best_epoch",)},
                                                "val": meta.get("metrics", {}).get("val")})
            return self._record("student", {"skipped": True})
        from models.student import StudentConfig, train_student

        s = self.split
        config = self.options.student
        if config is None and (student_dir / "student.json").is_file():
            # re-training reproduces the shipped student's recipe unless the caller gives another config
            config = StudentConfig.from_dict(json.loads((student_dir / "student.json").read_text()).get("config", {}))
        config = config or StudentConfig()
        if self.options.student_overrides:
            config = StudentConfig.from_dict({**config.as_dict(), **self.options.student_overrides})
        metrics = train_student(self.spec, self.rows(s.train), self.rows(s.val), student_dir, config)
        return self._record("student", {"trained": True, **{k: v for k, v in metrics.items() if k != "history"}})

    def _student_raw(self, idx: np.ndarray, name: str) -> np.ndarray | None:
        """Raw student predictions for rows `idx`, cached in the work dir by adapter digest."""
        student_dir = self.out_dir / "student"
        if not (student_dir / "student.json").is_file():
            return None
        from models.student import Student

        student = Student.load(student_dir)
        key = student.fingerprint()["adapter_sha256"]
        path = self.workdir / f"student_{name}_{key}.npy"
        if path.is_file():
            return np.load(path)
        raw = student.predict(self.rows(idx), batch_size=32)
        np.save(path, raw)
        return raw

    def step_calibrate(self) -> dict[str, Any]:
        """Score post-processing fitted on val (the student never trained on it): a per-dimension student/probe
        blend weight, then isotonic per dimension, then rounding to the oracle's label grid per dimension. Each is
        kept only if it lowers MAE out of fold (2-fold cross-fit on val). Stage-1 (probe) scores get their own
        per-dimension snap decision on val."""
        s, y, dims = self.split, self.data.labels, self.spec.dimension_names
        yv, grid = y[s.val], label_grid(y[s.train])
        probe = Probe.load(self.out_dir).predict(self.embeddings[s.val], self.articles(s.val)).astype(np.float64)
        probe_snap = fit_snap(np.clip(probe, 0, 10), yv, grid)  # Stage-1 scores: the probe stopped early on val
        raw = self._student_raw(s.val, "val")
        if raw is None:
            cal = Calibration.identity(dims, {"note": "no student: only the Stage-1 snap", "label_grid": grid})
            cal.probe_snap = probe_snap if any(probe_snap) else None
            cal.save(self.out_dir)
            return self._record("calibrate", {"applied": False, "note": "no student", "probe_snap": cal.probe_snap})
        rng = np.random.default_rng(self.options.seed)
        order = rng.permutation(len(s.val))
        halves = (order[: len(order) // 2], order[len(order) // 2:])
        oof = {k: np.zeros_like(yv, dtype=np.float64) for k in ("student", "blend", "blend+isotonic", "isotonic")}
        for a, b in (halves, halves[::-1]):
            alpha = np.asarray(fit_blend(raw[a], probe[a], yv[a]))
            mix_a, mix_b = alpha * raw[a] + (1 - alpha) * probe[a], alpha * raw[b] + (1 - alpha) * probe[b]
            oof["student"][b] = np.clip(raw[b], 0, 10)
            oof["blend"][b] = np.clip(mix_b, 0, 10)
            oof["blend+isotonic"][b] = fit_isotonic(mix_a, yv[a], dims).apply(mix_b)
            oof["isotonic"][b] = fit_isotonic(raw[a], yv[a], dims).apply(raw[b])
        cross = {k: float(np.abs(v - yv).mean()) for k, v in oof.items()}
        best = min(cross, key=cross.__getitem__)
        snap = fit_snap(oof[best], yv, grid)
        snapped = snap_to_grid(oof[best], snap)
        blend = fit_blend(raw, probe, yv) if best.startswith("blend") else None
        base = (np.asarray(blend) * raw + (1 - np.asarray(blend)) * probe) if blend is not None else raw
        iso = best.endswith("isotonic")
        cal = fit_isotonic(base, yv, dims) if iso else Calibration.identity(dims)
        cal.applied, cal.blend, cal.snap = iso, blend, (snap if any(snap) else None)
        cal.probe_snap = probe_snap if any(probe_snap) else None
        w = np.asarray(self.spec.weights)
        cal.stats = {"fitted_on": "val", "n_fit": int(len(raw)), "selection": "2-fold cross-fit on val",
                     "cross_fit_mae": cross, "chosen": best,
                     "mae_before": cross["blend" if blend is not None else "student"], "mae_after": cross[best],
                     "n_check": int(len(raw)), "label_grid": grid,
                     "snap_cross_fit": {"mae": float(np.abs(snapped - yv).mean()),
                                        "wa_mae_before": float(np.abs((oof[best] - yv) @ w).mean()),
                                        "wa_mae_after": float(np.abs((snapped - yv) @ w).mean())}}
        cal.save(self.out_dir)
        return self._record("calibrate", {"applied": cal.applied, "blend": blend, "snap": cal.snap,
                                          "probe_snap": cal.probe_snap, **cal.stats})

    def step_tiers(self) -> dict[str, Any]:
        """The tier model (models/tiers.py): P(WA ≥ edge) heads on out-of-fold features, Stage-2 refinement and
        policy cutoffs chosen on OOF train + val; writes tiers.json/.safetensors and the needle PR curve."""
        from models.training.tiers import fit_tier_model, write_pr_curve

        model, curve = fit_tier_model(self, c=self.options.tier_c)
        model.save(self.out_dir)
        write_pr_curve(self.out_dir, curve)
        return self._record("tiers", model.metrics)

    def step_curve(self) -> dict[str, Any]:
        """Sweep every router on the test split; speed-up modelled from measured per-article Stage-1/2 costs."""
        s, x = self.split, self.embeddings
        probe = Probe.load(self.out_dir)
        scores = probe.predict(x[s.test], self.articles(s.test))
        pos = self.positive(s.test)
        timing = self._measure_costs(s.test)
        curves: dict[str, Any] = {}
        for path in sorted(self.out_dir.glob("router*.json")):
            stem = path.stem
            r = Router.load(self.out_dir, stem)
            stat = route_statistic(r, probe, x[s.test], scores, self.spec.weights)
            op = route_stats(stat, pos, r.threshold)
            if timing:
                from models.evaluation.curve import modelled_speedup

                op["speedup_modelled"] = modelled_speedup(op["stage2_share"], timing["stage1_s_per_article"],
                                                          timing["stage2_s_per_article"])
            curves[r.kind] = {"shipped": stem == "router", "operating_point": op,
                              "points": sweep(stat, pos, timing=timing)}
        meta = {"title": f"{self.spec.key}: routing on the test split (n={len(s.test)}, protected={int(pos.sum())})",
                "split": "test", "n": int(len(s.test)), "protected": int(pos.sum()),
                "protected_threshold": self.spec.protected_threshold,
                "max_false_negative_rate": self.spec.hybrid.max_false_negative_rate, "timing": timing}
        write_curve(self.out_dir, curves, meta)
        return self._record("curve", {k: v["operating_point"] for k, v in curves.items()} | {"timing": timing})

    def _measure_costs(self, idx: np.ndarray, n: int = 128) -> dict[str, float]:
        """Per-article wall clock of Stage 1 (probe + router on an embedding) and Stage 2 (student), measured."""
        student_dir = self.out_dir / "student"
        if not (student_dir / "student.json").is_file():
            return {}
        from models.student import Student

        student = Student.load(student_dir)
        sub = idx[:n]
        arts = [self.data.articles[i] for i in sub]
        student.predict(arts[:4])  # warm-up
        t0 = time.perf_counter()
        student.predict(arts, batch_size=16)
        t2 = (time.perf_counter() - t0) / len(sub)
        probe = Probe.load(self.out_dir)
        r = Router.load(self.out_dir)
        t0 = time.perf_counter()
        sc = probe.predict(self.embeddings[sub], arts)
        route_statistic(r, probe, self.embeddings[sub], sc, self.spec.weights)
        t1 = (time.perf_counter() - t0) / len(sub)
        return {"stage1_s_per_article": t1, "stage2_s_per_article": t2, "n_timed": int(len(sub)),
                "device": str(student.device)}

    def step_evaluate(self, out: Path | None = None) -> dict[str, Any]:
        """Test-split evaluation through the pipeline objects (commerce gate and prefilter off); then the monitor's
        `reference.json` from the served test-split results, tied to the fingerprint of the final manifest."""
        from models.evaluation.report import build_reference, evaluate
        from models.pipeline import FilterModels, Pipeline

        fm = FilterModels.load(self.spec, self.encoder, directory=self.out_dir)
        pipe = Pipeline(self.encoder, {self.spec.name: fm}, None, apply_prefilter=False)
        test = self.data.subset(self.split.test)
        results: list[Any] = []
        report = evaluate(pipe, self.spec.name, test, n_boot=self.options.n_boot, artifacts_dir=self.out_dir,
                          results_out=results)
        report["split"] = "test"
        y_te, w = self.data.labels[self.split.test], np.asarray(self.spec.weights)
        mean = self.data.labels[self.split.train].mean(0)
        report["mean_predictor"] = {"mae": float(np.abs(y_te - mean).mean()),
                                    "wa_mae": float(np.abs((y_te - mean) @ w).mean()),
                                    "note": "train-split mean of every dimension, scored on the test split"}
        report["system"] = self._system_report(test)
        (out or self.out_dir / "test_report.json").write_text(json.dumps(report, indent=2) + "\n")
        summary = {k: {m: report[k][m] for m in ("mae", "wa_mae", "tier_accuracy", "spearman_wa")}
                   for k in ("probe", "student", "hybrid") if report.get(k)}
        summary["hybrid_routing"] = {k: report["hybrid"].get(k) for k in ("fn_rate", "stage2_share",
                                                                           "speedup_measured")}
        summary["calibration"] = report["calibration"]
        summary["system"] = {k: report["system"][k] for k in ("system_wa_mae", "served_tiers", "misses")}
        summary["system"]["needles"] = {k: report["system"]["needles"][k] for k in ("precision", "recall", "f1")}
        summary["mean_predictor"] = report["mean_predictor"]
        oracle = {str(a["id"]): row for a, row in zip(test.articles, test.labels, strict=True)}
        # the reference summary goes into the manifest first; the reference itself is written last, stamped with
        # the digest of that final manifest (= the fingerprint every served Result carries from now on)
        ref = build_reference(self.spec, results, oracle, fingerprint="")
        summary["reference"] = {"n": len(ref.weighted_average), "rates": ref.rates, "heldout_mae": ref.heldout_mae,
                                "residual_mean": ref.residual_mean, "residual_std": ref.residual_std}
        metrics = self._record("evaluate", summary)
        ref.fingerprint = manifest_digest(self.out_dir)
        ref.save(self.out_dir / REFERENCE)
        return metrics

    def _system_report(self, test: Any) -> dict[str, Any]:
        """The test split through the served path with every gate on (commerce gate when its head matches this
        encoder, filter prefilter, router, Stage 2, tier model): models.evaluation.system; confusion PNG beside."""
        from models.evaluation.system import evaluate_system, plot_confusion
        from models.pipeline import FilterModels, Pipeline, _commerce_gate

        fm = FilterModels.load(self.spec, self.encoder, directory=self.out_dir)
        try:
            gate = _commerce_gate(self.encoder)
        except ArtifactError as err:  # a commerce head trained on another encoder: evaluate without the gate
            log.warning("system evaluation without the commerce gate: %s", err)
            gate = None
        report = evaluate_system(Pipeline(self.encoder, {self.spec.name: fm}, gate), self.spec.name, test,
                                 n_boot=self.options.n_boot)
        report["split"] = "test"
        plot_confusion(report, self.out_dir / "system_confusion.png")
        return report

    def run(self, steps: tuple[str, ...] = STEPS) -> dict[str, Any]:
        for step in steps:
            log.info("step %s", step)
            getattr(self, f"step_{step}")()
        return self.metrics
