"""The student step calls models.training.student.train_student with the shipped config plus CLI overrides."""

from __future__ import annotations

import json

import models.training.student as student_mod
from models.embedding import hashing_encoder
from models.student.config import StudentConfig
from models.training import steps
from models.training.steps import TrainOptions, TrainRun


def test_student_step_reuses_shipped_config_with_overrides(trained, tmp_path, monkeypatch, fake_encoder):
    spec, data, run = trained
    seen = {}

    def fake_train(spec_, train_rows, val_rows, out_dir, config):
        seen.update(config=config, n_train=len(train_rows), n_val=len(val_rows), out=out_dir)
        return {"best_epoch": 1, "history": [1, 2]}

    monkeypatch.setattr(student_mod, "train_student", fake_train)
    out = tmp_path / "artifacts"
    (out / "student").mkdir(parents=True)
    shipped = StudentConfig(lr=1.5e-3, epochs=3).as_dict()
    (out / "student" / "student.json").write_text(json.dumps({"config": shipped}))
    r = TrainRun(spec, data, out, encoder=fake_encoder, workdir=tmp_path / "work",
                 options=TrainOptions(student_overrides={"epochs": 1}))
    metrics = r.step_student()
    assert seen["config"].lr == 1.5e-3 and seen["config"].epochs == 1
    assert seen["n_train"] == len(run.split.train) and seen["n_val"] == len(run.split.val)
    assert metrics["trained"] is True and "history" not in metrics


def test_work_dirs_of_two_embeddings_never_mix(trained, monkeypatch, tmp_path):
    """Out-of-fold probe scores of a run on one embedding must never be read by a run on another one."""
    spec = trained[0]
    monkeypatch.setenv("DISTILLERY_CACHE_DIR", str(tmp_path))
    one, other = hashing_encoder(64, model_id="hashing-a"), hashing_encoder(64, model_id="hashing-b")
    assert steps.run_dir(spec, one) != steps.run_dir(spec, other)
    assert steps.run_dir(spec, one) == steps.run_dir(spec, hashing_encoder(64, model_id="hashing-a"))
    assert steps.run_dir(spec, one).parent == tmp_path / "runs"
