"""What one filter version needs at inference (probe, router, calibration, prefilter, tier model, student), loaded
from verified artifacts; the escalation rule (does this version have a student?) and the commerce gate."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filters.commerce import CommerceFilter, CommerceRules
from filters.prefilter import Prefilter
from filters.spec import FilterSpec
from models import commerce_head
from models.artifacts import MANIFEST, ArtifactError, manifest_digest, verify_artifacts
from models.calibration import Calibration
from models.embedding import Encoder
from models.probe import Probe
from models.router import Router
from models.seams import CommerceGate, StudentModel
from models.student.model import Student
from models.student_select import student_dir
from models.tiers import TierModel

log = logging.getLogger(__name__)

STUDENT_DIR = "student"


@dataclass
class FilterModels:
    """Everything one filter version needs at inference, loaded from verified artifacts.

    `has_student` says whether the filter version's ARTIFACTS hold a student: it decides escalation to Stage 2,
    whether or not this process loaded the student (a probe-only worker escalates exactly like an all-roles one).
    `stage1_only` turns Stage 2 off on purpose (evaluation of the probe alone)."""

    spec: FilterSpec
    probe: Probe
    router: Router
    calibration: Calibration
    student: StudentModel | None = None
    prefilter: Any | None = None  # filters.prefilter.Prefilter
    fingerprint: str = ""
    manifest: dict[str, Any] = field(default_factory=dict)
    has_student: bool = False
    stage1_only: bool = False

    @property
    def escalates(self) -> bool:
        """True when the router's escalations go to Stage 2 (the artifacts hold a student, or one was set)."""
        return (self.has_student or self.student is not None) and not self.stage1_only
    tiers: Any | None = None  # models.tiers.TierModel: the served tier + tier_confidence (None: postfilter tier)

    @classmethod
    def load(cls, spec: FilterSpec, encoder: Encoder | None = None, *, device: str | None = None,
             with_student: bool = True, directory: Path | None = None, stage1_only: bool = False,
             student_preference: str | None = None) -> FilterModels:
        """Verify the manifest (checksums, spec and encoder fingerprints), then load probe, router, calibration,
        prefilter and — when present and wanted — the student. `with_student=False` only skips LOADING it (a
        process that never runs Stage 2): escalation still follows the artifacts."""
        directory = directory or spec.artifacts_dir
        manifest = verify_artifacts(directory, spec, encoder.fingerprint() if encoder else None)
        probe = Probe.load(directory)
        router = Router.load(directory)
        calibration = Calibration.load(directory, spec.dimension_names)
        student = None
        has_student = student_in_artifacts(directory, manifest)
        listed = manifest.get("files") if isinstance(manifest.get("files"), dict) else None
        wanted = with_student and has_student and not stage1_only
        # Gemma on CUDA, else MiniLM, unless the worker's settings name one (models/student_select.py)
        chosen = student_dir(directory, device, student_preference, listed=listed) if wanted else None
        if chosen is not None:
            student = Student.load(chosen[1], device=device)
            student.name = chosen[0]  # which student serves: Result.student
            recorded = (manifest.get("student") or {}).get("recipe")
            if recorded is not None and recorded != student.fingerprint().get("recipe"):
                raise ArtifactError(
                    f"{directory / STUDENT_DIR}: the student's preprocessing differs from the one recorded in "
                    f"{directory / MANIFEST}; re-train with `distillery train --filter {spec.path}`"
                )
        elif not has_student:
            log.warning("filter %s has no student in %s: articles above the router's operating point get "
                        "probe scores (stage1)", spec.key, directory)
        return cls(spec, probe, router, calibration, student, Prefilter.for_spec(spec), manifest_digest(directory),
                   manifest, has_student=has_student, stage1_only=stage1_only,
                   tiers=TierModel.load(directory, spec.tier_names))


def student_in_artifacts(directory: Path, manifest: Mapping[str, Any] | None = None) -> bool:
    """Whether a filter version's artifacts hold a Stage-2 student: the manifest lists its files (verified by
    checksum), or the folder has one. The one source of the escalation decision."""
    listed = (manifest or {}).get("files") or {}
    return f"{STUDENT_DIR}/student.json" in listed or (directory / STUDENT_DIR / "student.json").is_file()


def commerce_gate(encoder: Encoder) -> CommerceGate:
    """The combined commerce filter: the universal rules plus the trained head (rules only when no head is trained).

    The head must have been trained on this encoder's vectors; another model is refused with the fix."""
    head = commerce_head.load_default()
    if head is not None and head.embedding:
        mine = encoder.fingerprint()
        for key in ("model_id", "dimension", "recipe_fingerprint"):
            if head.embedding.get(key) != mine.get(key):
                raise ArtifactError(
                    f"{commerce_head.DEFAULT_DIR}: the commerce head was trained on embedding "
                    f"{key}={head.embedding.get(key)!r} "
                    f"but the encoder has {mine.get(key)!r}; re-train it with `distillery train-commerce --data "
                    "commerce.jsonl` or load the pipeline with commerce=False"
                )
    threshold = head.threshold if head is not None else 0.5
    return CommerceFilter(CommerceRules.default(), head=head, threshold=threshold)
