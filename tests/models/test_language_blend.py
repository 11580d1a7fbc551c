"""The per-language Stage-2 blend: a row uses its language's student/probe weights where fitted, else the global."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.calibration import CALIBRATION_FILE, Calibration, CalibrationError, select_calibration


def _cal() -> Calibration:
    return Calibration(["a", "b"], [[0.0, 10.0]] * 2, [[0.0, 10.0]] * 2, applied=False, blend=[0.5, 1.0],
                       blend_by_language={"nl": [0.0, 0.25]})


STUDENT = np.array([[4.0, 8.0], [4.0, 8.0], [4.0, 8.0], [4.0, 8.0]])
PROBE = np.array([[2.0, 4.0], [2.0, 4.0], [2.0, 4.0], [2.0, 4.0]])


def test_each_row_uses_its_languages_blend_and_others_the_global_one():
    cal = _cal()
    out = cal.stage2(STUDENT, PROBE, ["en", "nl", None, "de"], snap=False)
    # en, no language and a language without its own blend: 0.5×4 + 0.5×2 = 3, 1.0×8 = 8; nl: 2 and 0.25×8 + 0.75×4
    assert out.tolist() == [[3.0, 8.0], [2.0, 5.0], [3.0, 8.0], [3.0, 8.0]]


def test_without_languages_every_row_uses_the_global_blend():
    assert _cal().stage2(STUDENT, PROBE).tolist() == [[3.0, 8.0]] * 4


def test_language_blend_applies_without_a_global_blend():
    cal = Calibration(["a", "b"], [[0.0, 10.0]] * 2, [[0.0, 10.0]] * 2, applied=False,
                      blend_by_language={"nl": [0.0, 0.5]})
    assert cal.combine(STUDENT[:2], PROBE[:2], ["en", "nl"]).tolist() == [[4.0, 8.0], [2.0, 6.0]]


def test_json_round_trip_and_old_files_load_unchanged(tmp_path):
    _cal().save(tmp_path)
    assert json.loads((tmp_path / CALIBRATION_FILE).read_text())["blend_by_language"] == {"nl": [0.0, 0.25]}
    loaded = Calibration.load(tmp_path, ["a", "b"])
    assert loaded.blend == [0.5, 1.0] and loaded.blend_by_language == {"nl": [0.0, 0.25]}
    assert loaded.stage2(STUDENT, PROBE, ["nl", "en"] * 2, snap=False).tolist() == [[2.0, 5.0], [3.0, 8.0]] * 2

    data = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    del data["blend_by_language"]  # a calibration.json written before the per-language blend
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps(data))
    old = Calibration.load(tmp_path, ["a", "b"])
    assert old.blend_by_language is None
    assert old.stage2(STUDENT, PROBE, ["nl", "en"] * 2, snap=False).tolist() == [[3.0, 8.0]] * 4


def test_a_wrong_length_language_blend_is_refused_naming_the_file_and_the_fix(tmp_path):
    _cal().save(tmp_path)
    path = tmp_path / CALIBRATION_FILE
    data = json.loads(path.read_text())
    data["blend_by_language"] = {"nl": [0.3]}
    path.write_text(json.dumps(data))
    with pytest.raises(CalibrationError) as err:
        Calibration.load(tmp_path, ["a", "b"])
    assert str(err.value) == (f"{path}: `blend_by_language.nl` has 1 entries for 2 dimensions; re-fit with "
                              "`distillery train-step calibrate`")


def test_select_calibration_fits_a_blend_per_language_with_enough_rows():
    rng = np.random.default_rng(0)
    n_en, n_nl, n_de = 200, 200, 20
    n = n_en + n_nl + n_de
    truth = rng.integers(0, 11, size=(n, 2)).astype(float)
    langs = ["en"] * n_en + ["nl"] * n_nl + ["de"] * n_de
    en, nl = np.arange(n) < n_en, (np.arange(n) >= n_en) & (np.arange(n) < n_en + n_nl)
    good, poor = rng.normal(0, 0.3, size=truth.shape), rng.normal(0, 1.5, size=truth.shape)
    student = truth + np.where(nl[:, None], poor, good)  # good on English (and German), poor on Dutch
    probe = truth + np.where(nl[:, None], good, poor)  # the other way round
    cal = select_calibration(student, probe, truth, 0.0, ["a", "b"], [0.5, 0.5], seed=1, languages=langs)
    assert cal.stats["chosen"] == "blend" and cal.blend is not None
    # each language leans on its better source; German (20 rows < 60) keeps the global blend
    assert cal.blend_by_language is not None and set(cal.blend_by_language) == {"en", "nl"}
    assert min(cal.blend_by_language["en"]) >= 0.7 and max(cal.blend_by_language["nl"]) <= 0.3
    assert set(cal.stats["blend_by_language"]) == {"en", "nl"}
    assert all(s["kept"] and s["cross_fit_mae_own"] < s["cross_fit_mae_global"]
               for s in cal.stats["blend_by_language"].values())
    assert cal.stats["mae_after"] < cal.stats["cross_fit_mae"]["blend"]
    served, global_only = cal.stage2(student, probe, langs), cal.stage2(student, probe)
    assert np.abs(served - truth).mean() < np.abs(global_only - truth).mean()
    assert served[~(en | nl)].tolist() == global_only[~(en | nl)].tolist()


def test_select_calibration_without_languages_has_no_language_blend():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 11, size=(200, 2)).astype(float)
    student, probe = truth + rng.normal(0, 1.0, size=truth.shape), truth + rng.normal(0, 1.0, size=truth.shape)
    cal = select_calibration(student, probe, truth, 0.0, ["a", "b"], [0.5, 0.5], seed=1)
    assert cal.blend_by_language is None and "blend_by_language" not in cal.stats
