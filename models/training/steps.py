"""The train steps (split → embed → probe → router → student → calibrate → curve → evaluate) over one work dir."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import KFold
from tqdm.auto import tqdm

from filters.spec import FilterSpec
from models.artifacts import MANIFEST, ArtifactError, manifest_digest, sha256_file, write_manifest
from models.calibration import Calibration, fit_snap, label_grid, select_calibration
from models.embedding import Encoder
from models.evaluation.curve import write_curve
from models.evaluation.reference import build_reference
from models.evaluation.report import evaluate
from models.evaluation.routing import measure_costs, router_curves
from models.evaluation.system import evaluate_system, plot_confusion
from models.filter_models import FilterModels, commerce_gate
from models.metrics import mae, wa_mae
from models.pipeline import Pipeline
from models.probe import Probe, ProbeConfig, train_probe
from models.router import Router
from models.router_fit import RouterOptions, select_router
from models.seams import CommerceGate
from models.student.config import StudentConfig
from models.student.model import Student
from models.training import student as student_training
from models.training.cache import EmbeddingCache, cache_dir
from models.training.data import Dataset, load_dataset
from models.training.split import Split, split_dataset
from models.training.step_names import STEPS
from models.training.tiers import fit_tier_model, write_pr_curve

log = logging.getLogger(__name__)

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
    student: StudentConfig | None = None  # None = its defaults
    train_student: bool = True  # False: keep an existing artifacts/student/ (or none)
    student_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {"epochs": 1} on top of the config
    n_boot: int = 1000
    tier_cs: tuple[float, ...] = (0.003, 0.03, 0.3)  # tier heads' inverse L2 strengths to choose from


def run_dir(spec: FilterSpec, encoder: Encoder) -> Path:
    """The work dir of one filter version on one embedding: intermediate files (split, out-of-fold probe scores,
    metrics) of a run on another encoder must never be read as this one's."""
    key = hashlib.sha256(f"{encoder.model_id}|{encoder.version}|{encoder.recipe.fingerprint()}".encode()).hexdigest()
    return cache_dir() / "runs" / f"{spec.name}-v{spec.version}-{key[:12]}"


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
        self.workdir = workdir or run_dir(spec, self.encoder)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._data: Dataset | None = None
        self._split: Split | None = None
        self._emb: np.ndarray | None = None
        # the shipped manifest's metrics (same data) win over the work dir's: a step run from a fresh or partial work
        # dir (another machine, a cleared cache) must not drop the earlier steps' metrics when it rewrites the manifest
        self.metrics: dict[str, Any] = {**(self._load_json("metrics.json") or {}), **self._shipped_metrics()}

    # -- helpers ---------------------------------------------------------------------------------------
    def _shipped_metrics(self) -> dict[str, Any]:
        path = self.out_dir / MANIFEST
        try:
            shipped = json.loads(path.read_text()) if path.is_file() else {}
            same_data = (self.data_path.is_file() and shipped.get("training_data", {}).get("sha256")
                         == sha256_file(self.data_path))
        except (OSError, json.JSONDecodeError, AttributeError):
            return {}
        metrics = shipped.get("metrics") if same_data else None
        return dict(metrics) if isinstance(metrics, dict) else {}

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
        return self.data.subset(idx).student_rows()

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
        metrics = {**probe.metrics, "seconds": round(time.perf_counter() - t0, 1),
                   "oof_train_mae": mae(oof, y[s.train]),
                   "oof_train_wa_mae": wa_mae(oof, y[s.train], self.spec.weights)}
        return self._record("probe", metrics)

    def step_router(self) -> dict[str, Any]:
        """Train every router kind and ship the one with the smallest Stage-2 share on the selection pool
        (`models.router_fit.select_router`); the others are saved beside it for the reports."""
        s, x, opt = self.split, self.embeddings, self.options
        probe = Probe.load(self.out_dir)
        oof = np.load(self.workdir / "probe_oof.npy")
        val_scores = probe.predict(x[s.val], self.articles(s.val))
        wa_all = self.data.weighted_averages(self.spec.weights)
        options = RouterOptions(c=opt.router_c, knn_c=opt.knn_router_c, knn_margin=opt.knn_router_margin,
                                knn_min_train=opt.knn_router_min_train, fn_margin=opt.fn_margin, folds=opt.folds,
                                seed=opt.seed)
        sel = select_router(probe, self.spec.weights, self.spec.protected_threshold,
                            self.spec.hybrid.max_false_negative_rate, x[s.train], x[s.val], oof, val_scores,
                            wa_all[s.train], wa_all[s.val], options)
        for old in self.out_dir.glob("router*"):
            old.unlink()
        sel.chosen.save(self.out_dir, "router")
        for r in sel.routers:
            if r is not sel.chosen:
                r.save(self.out_dir, "router_baseline" if r is sel.baseline else f"router_{r.kind}")
        return self._record("router", sel.metrics)

    def step_student(self) -> dict[str, Any]:
        """Train the Stage-2 student through models.training.student (or keep the one already in artifacts/student/)."""
        student_dir = self.out_dir / "student"
        if not self.options.train_student:
            if (student_dir / "student.json").is_file():
                meta = json.loads((student_dir / "student.json").read_text())
                return self._record("student", {"kept_existing": True, **{k: meta.get(k) for k in ("best_epoch",)},
                                                "val": meta.get("metrics", {}).get("val")})
            return self._record("student", {"skipped": True})
        s = self.split
        config = self.options.student
        if config is None and (student_dir / "student.json").is_file():
            # re-training reproduces the shipped student's recipe unless the caller gives another config
            config = StudentConfig.from_dict(json.loads((student_dir / "student.json").read_text()).get("config", {}))
        config = config or StudentConfig()
        if self.options.student_overrides:
            config = StudentConfig.from_dict({**config.as_dict(), **self.options.student_overrides})
        metrics = student_training.train_student(self.spec, self.rows(s.train), self.rows(s.val), student_dir, config)
        return self._record("student", {"trained": True, **{k: v for k, v in metrics.items() if k != "history"}})

    def _student_raw(self, idx: np.ndarray, name: str) -> np.ndarray | None:
        """Raw student predictions for rows `idx`, cached in the work dir by adapter digest."""
        student_dir = self.out_dir / "student"
        if not (student_dir / "student.json").is_file():
            return None
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
        languages = [a.get("language") for a in self.articles(s.val)]
        cal = select_calibration(raw, probe, yv, grid, dims, self.spec.weights, self.options.seed, languages)
        cal.probe_snap = probe_snap if any(probe_snap) else None
        cal.save(self.out_dir)
        return self._record("calibrate", {"applied": cal.applied, "blend": cal.blend,
                                          "blend_by_language": cal.blend_by_language, "snap": cal.snap,
                                          "probe_snap": cal.probe_snap, **cal.stats})

    def step_tiers(self) -> dict[str, Any]:
        """The tier model (models/tiers.py): P(WA ≥ edge) heads on out-of-fold features, Stage-2 refinement and
        policy cutoffs chosen on OOF train + val; writes tiers.json/.safetensors and the needle PR curve."""
        model, curve = fit_tier_model(self, cs=self.options.tier_cs)
        model.save(self.out_dir)
        write_pr_curve(self.out_dir, curve)
        return self._record("tiers", model.metrics)

    def step_curve(self) -> dict[str, Any]:
        """Sweep every router on the test split; speed-up modelled from measured per-article Stage-1/2 costs."""
        s, x = self.split, self.embeddings
        probe = Probe.load(self.out_dir)
        arts = self.articles(s.test)
        pos = self.positive(s.test)
        student_dir = self.out_dir / "student"
        timing = {}
        if (student_dir / "student.json").is_file():
            timing = measure_costs(Student.load(student_dir), probe, Router.load(self.out_dir), x[s.test], arts,
                                   self.spec.weights)
        curves = router_curves(self.out_dir, probe, x[s.test], probe.predict(x[s.test], arts), pos,
                               self.spec.weights, timing)
        meta = {"title": f"{self.spec.key}: routing on the test split (n={len(s.test)}, protected={int(pos.sum())})",
                "split": "test", "n": int(len(s.test)), "protected": int(pos.sum()),
                "protected_threshold": self.spec.protected_threshold,
                "max_false_negative_rate": self.spec.hybrid.max_false_negative_rate, "timing": timing}
        write_curve(self.out_dir, curves, meta)
        return self._record("curve", {k: v["operating_point"] for k, v in curves.items()} | {"timing": timing})

    def step_evaluate(self, out: Path | None = None) -> dict[str, Any]:
        """Test-split evaluation through the pipeline objects (commerce gate and prefilter off); then the monitor's
        `reference.json` from the served test-split results, tied to the fingerprint of the final manifest."""
        fm = FilterModels.load(self.spec, self.encoder, directory=self.out_dir)
        pipe = Pipeline(self.encoder, {self.spec.name: fm}, None, apply_prefilter=False)
        test = self.data.subset(self.split.test)
        results: list[Any] = []
        report = evaluate(pipe, self.spec.name, test, n_boot=self.options.n_boot, artifacts_dir=self.out_dir,
                          results_out=results)
        report["split"] = "test"
        y_te = self.data.labels[self.split.test]
        mean = np.broadcast_to(self.data.labels[self.split.train].mean(0), y_te.shape)
        report["mean_predictor"] = {"mae": mae(mean, y_te), "wa_mae": wa_mae(mean, y_te, self.spec.weights),
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
        fm = FilterModels.load(self.spec, self.encoder, directory=self.out_dir)
        gate: CommerceGate | None
        try:
            gate = commerce_gate(self.encoder)
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
