"""Trained-artifact manifest: sha256 of every file, embedding + preprocessing fingerprints, data hash, metrics."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from filters.spec import FilterSpec
from filters.timeutil import now_iso
from models.errors import ModelsError

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


class ArtifactError(ModelsError, RuntimeError):
    """Artifacts that must not be loaded; the message names the file and how to fix it."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def spec_fingerprint(spec: FilterSpec) -> dict[str, Any]:
    """The parts of a spec a trained model depends on: dimensions (order), weights and preprocessing."""
    body = {
        "dimension_names": spec.dimension_names,
        "weights": spec.weights,
        "preprocessing": spec.preprocessing.model_dump(),
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    return {**body, "fingerprint": digest}


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)


def write_manifest(
    directory: Path,
    spec: FilterSpec,
    *,
    embedding: dict[str, Any] | None,
    training_data: dict[str, Any] | None = None,
    student: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Hash every file under `directory` and write `manifest.json` (overwrites; call after the last file)."""
    files = {str(p.relative_to(directory)): sha256_file(p) for p in _files(directory)}
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "filter": spec.name,
        "filter_version": spec.version,
        "created_at": now_iso(),
        "embedding": embedding,
        "preprocessing": spec_fingerprint(spec),
        "student": student,
        "training_data": training_data or {},
        "metrics": metrics or {},
        "files": files,
        **(extra or {}),
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return manifest


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{path}: no manifest; these artifacts were not written by `distillery train` — re-train")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ArtifactError(f"{path}: unreadable manifest ({err}); re-train with `distillery train`") from None


def manifest_digest(directory: Path) -> str:
    """Short id of an artifact set (first 12 hex of the manifest's sha256): stamped on every result."""
    return sha256_file(directory / MANIFEST)[:12]


def verify_artifacts(
    directory: Path, spec: FilterSpec, embedding: dict[str, Any] | None = None, *, retrain_hint: str | None = None
) -> dict[str, Any]:
    """Check checksums of every listed file, the spec fingerprint and (if given) the encoder fingerprint.

    Raises ArtifactError naming the file or field and the fix (re-train) on any mismatch.
    """
    hint = retrain_hint or f"re-train with `distillery train --filter {spec.directory}/filter.yaml --data FILE.jsonl`"
    manifest = read_manifest(directory)
    for rel, expected in manifest.get("files", {}).items():
        path = directory / rel
        if not path.is_file():
            raise ArtifactError(f"{path}: listed in {directory / MANIFEST} but missing; restore it or {hint}")
        actual = sha256_file(path)
        if actual != expected:
            raise ArtifactError(
                f"{path}: checksum mismatch (manifest {expected[:12]}…, file {actual[:12]}…): the file was changed "
                f"after training; restore it or {hint}"
            )
    stored = manifest.get("preprocessing", {})
    current = spec_fingerprint(spec)
    if stored.get("fingerprint") != current["fingerprint"]:
        diffs = [k for k in ("dimension_names", "weights", "preprocessing") if stored.get(k) != current[k]]
        raise ArtifactError(
            f"{directory / MANIFEST}: artifacts were trained for a different spec of {spec.key} "
            f"(differs in {diffs or ['fingerprint']}); {hint}"
        )
    if embedding is not None and manifest.get("embedding") is not None:
        mine = manifest["embedding"]
        for key in ("model_id", "dimension", "recipe_fingerprint"):
            if mine.get(key) != embedding.get(key):
                raise ArtifactError(
                    f"{directory / MANIFEST}: trained with embedding {key}={mine.get(key)!r} but the encoder has "
                    f"{embedding.get(key)!r}; set DISTILLERY_EMBEDDING_MODEL={mine.get('model_id')} or {hint}"
                )
    return manifest
