"""Manifest checksums and fingerprints: tampered files, changed specs and another encoder are refused."""

from __future__ import annotations

import shutil

import pytest
from model_helpers import write_spec

from filters.spec import load_spec
from models.artifacts import MANIFEST, ArtifactError, verify_artifacts
from models.embedding import hashing_encoder
from models.filter_models import FilterModels


@pytest.fixture
def copy(trained, tmp_path, spec_data):
    """A private copy of the trained artifacts next to a private copy of the spec."""
    spec, _, run = trained
    path = write_spec(tmp_path, spec_data)
    shutil.copytree(run.out_dir, path.parent / "artifacts")
    return load_spec(path)


def test_manifest_lists_every_file_and_fingerprints(copy, fake_encoder):
    manifest = verify_artifacts(copy.artifacts_dir, copy, fake_encoder.fingerprint())
    files = set(manifest["files"])
    assert {"probe.safetensors", "probe.json", "router.json", "calibration.json", "routing_curve.json",
            "routing_curve.png"} <= files
    assert manifest["embedding"]["model_id"] == "hashing-test"
    assert manifest["preprocessing"]["dimension_names"] == ["impact", "evidence", "reach"]
    assert len(manifest["training_data"]["sha256"]) == 64
    assert {"probe", "router", "evaluate"} <= set(manifest["metrics"])


def test_tampered_file_is_refused_with_its_name(copy, fake_encoder):
    target = copy.artifacts_dir / "probe.safetensors"
    target.write_bytes(target.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ArtifactError, match=r"probe\.safetensors: checksum mismatch.*distillery train"):
        FilterModels.load(copy, fake_encoder)


def test_missing_file_is_refused(copy, fake_encoder):
    (copy.artifacts_dir / "router.json").unlink()
    with pytest.raises(ArtifactError, match=r"router\.json: listed in .* but missing"):
        verify_artifacts(copy.artifacts_dir, copy, fake_encoder.fingerprint())


def test_spec_preprocessing_change_is_refused(copy, tmp_path, spec_data, fake_encoder):
    changed = {**spec_data, "preprocessing": {"head_tokens": 128, "tail_tokens": 128}}
    spec2 = load_spec(write_spec(tmp_path, changed))
    with pytest.raises(ArtifactError, match=r"different spec .*preprocessing.*re-train"):
        FilterModels.load(spec2, fake_encoder)


def test_other_encoder_is_refused(copy):
    other = hashing_encoder(64, model_id="another-model")
    with pytest.raises(ArtifactError, match="model_id='hashing-test'.*DISTILLERY_EMBEDDING_MODEL"):
        FilterModels.load(copy, other)


def test_missing_manifest_is_refused(copy, fake_encoder):
    (copy.artifacts_dir / MANIFEST).unlink()
    with pytest.raises(ArtifactError, match="no manifest"):
        FilterModels.load(copy, fake_encoder)

