"""Validation messages of filter specs (file, field and fix) and how specs are found by name, version or path."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from filters.spec import SpecError, available, load_spec, parse_spec, resolve_spec, spec_paths


def write_spec(root: Path, data: dict, name: str | None = None, version: int | None = None) -> Path:
    """Write `data` as `<root>/<name>/v<version>/filter.yaml` and return the file path."""
    name = name or data["name"]
    version = version or data["version"]
    path = root / name / f"v{version}" / "filter.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def load_error(tmp_path: Path, data: dict) -> str:
    path = write_spec(tmp_path, data)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert str(path.resolve()) in message, "every validation error names the file"
    return message


def mutated(data: dict, change) -> dict:
    out = copy.deepcopy(data)
    change(out)
    return out


def test_valid_spec_loads_with_derived_views(tiny_spec_data, tmp_path):
    path = write_spec(tmp_path, tiny_spec_data)
    spec = load_spec(path)
    assert spec.key == "tiny/v1"
    assert spec.dimension_names == ["impact", "evidence", "reach"]
    assert spec.weights == [0.5, 0.3, 0.2]
    assert spec.tier_names == ["high", "medium", "low"]
    assert spec.protected_threshold == 4.0
    assert spec.directory == path.parent.resolve()
    assert spec.artifacts_dir == path.parent.resolve() / "artifacts"
    assert spec.prompt_path == path.parent.resolve() / "prompt.md"
    assert load_spec(path.parent) == spec, "a directory holding filter.yaml loads the same spec"


def test_weights_not_summing_to_one_name_file_field_and_sum(tiny_spec_data, tmp_path):
    data = mutated(tiny_spec_data, lambda d: d["dimensions"][2].update(weight=0.1))
    message = load_error(tmp_path, data)
    assert "dimensions:" in message
    assert "sum to 0.9," in message
    assert "adjust the weights so they add up to 1.0" in message


def test_weights_within_tolerance_are_accepted(tiny_spec_data, tmp_path):
    data = mutated(tiny_spec_data, lambda d: d["dimensions"][2].update(weight=0.2 + 5e-7))
    assert load_spec(write_spec(tmp_path, data)).weights[2] == pytest.approx(0.2 + 5e-7)


def test_weight_out_of_range_names_the_dimension_field(tiny_spec_data, tmp_path):
    data = mutated(tiny_spec_data, lambda d: d["dimensions"][0].update(weight=1.5))
    message = load_error(tmp_path, data)
    assert "dimensions.0.weight" in message
    assert "less than or equal to 1" in message


def test_gatekeeper_on_unknown_dimension_lists_the_known_ones(tiny_spec_data, tmp_path):
    data = mutated(tiny_spec_data, lambda d: d["gatekeepers"][0].update(dimension="rigour"))
    message = load_error(tmp_path, data)
    assert "gatekeepers[0].dimension 'rigour' is not a dimension of this filter" in message
    assert "use one of ['evidence', 'impact', 'reach']" in message


def test_content_type_cap_on_unknown_dimension(tiny_spec_data, tmp_path):
    data = mutated(tiny_spec_data, lambda d: d["content_types"]["greenwashing"].update(max_dimensions={"nope": 3.0}))
    message = load_error(tmp_path, data)
    assert "content_types.greenwashing.max_dimensions names unknown dimensions ['nope']" in message


def test_tiers_out_of_order_explain_the_order(tiny_spec_data, tmp_path):
    data = mutated(tiny_spec_data, lambda d: d["tiers"].reverse())
    message = load_error(tmp_path, data)
    assert "tiers: tiers out of order [('low', 0.0), ('medium', 4.0), ('high', 7.0)]" in message
    assert "from the highest threshold to the lowest" in message


def test_equal_tier_thresholds_are_out_of_order(tiny_spec_data, tmp_path):
    data = mutated(tiny_spec_data, lambda d: d["tiers"][1].update(threshold=7.0))
    assert "tiers out of order" in load_error(tmp_path, data)


def test_last_tier_must_start_at_zero(tiny_spec_data, tmp_path):
    data = mutated(tiny_spec_data, lambda d: d["tiers"][2].update(threshold=1.0))
    message = load_error(tmp_path, data)
    assert "the last tier 'low' must have threshold 0.0" in message


def test_duplicate_dimensions_are_named(tiny_spec_data, tmp_path):
    def dup(d):
        d["dimensions"] = [{"name": "impact", "weight": 0.5}, {"name": "impact", "weight": 0.5}]
        d["gatekeepers"] = []
        d["content_types"] = {}

    message = load_error(tmp_path, mutated(tiny_spec_data, dup))
    assert "duplicate dimension names ['impact']" in message
    assert "give each dimension a unique name" in message


def test_no_dimensions_is_an_error(tiny_spec_data, tmp_path):
    def none(d):
        d["dimensions"] = []
        d["gatekeepers"] = []
        d["content_types"] = {}

    assert "at least one dimension is required" in load_error(tmp_path, mutated(tiny_spec_data, none))


def test_unknown_protected_tier_lists_the_tiers(tiny_spec_data, tmp_path):
    data = mutated(tiny_spec_data, lambda d: d["hybrid"].update(protected_tier="promising"))
    message = load_error(tmp_path, data)
    assert "hybrid.protected_tier 'promising' is not a tier; use one of ['high', 'medium', 'low']" in message


def test_unknown_field_is_rejected_by_name(tiny_spec_data, tmp_path):
    data = mutated(tiny_spec_data, lambda d: d.update(gatekeeper_cap=3.0))
    message = load_error(tmp_path, data)
    assert "gatekeeper_cap: Extra inputs are not permitted" in message


def test_name_must_be_snake_case(tiny_spec_data, tmp_path):
    data = mutated(tiny_spec_data, lambda d: d.update(name="ai-engineering"))
    message = load_error(tmp_path, data)
    assert "name 'ai-engineering' must be lower_snake_case" in message


def test_missing_required_field_is_named(tiny_spec_data, tmp_path):
    data = mutated(tiny_spec_data, lambda d: d.pop("tiers"))
    assert "tiers: Field required" in load_error(tmp_path, data)


def test_several_errors_are_reported_together(tiny_spec_data, tmp_path):
    def two(d):
        d["dimensions"][0]["weight"] = 0.9
        d["tiers"].reverse()

    message = load_error(tmp_path, mutated(tiny_spec_data, two))
    assert "sum to 1.4," in message
    assert "tiers out of order" in message


def test_bad_yaml_names_the_file_and_asks_to_fix_syntax(tmp_path):
    path = tmp_path / "broken" / "v1" / "filter.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("name: broken\ndimensions: [unclosed\n", encoding="utf-8")
    with pytest.raises(SpecError, match="not valid YAML") as err:
        load_spec(path)
    assert str(path) in str(err.value)
    assert "fix the syntax" in str(err.value)


def test_top_level_must_be_a_mapping(tmp_path):
    path = tmp_path / "filter.yaml"
    path.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(SpecError, match="expected a mapping at the top level, got list"):
        load_spec(path)


def test_missing_file_says_what_to_pass(tmp_path):
    path = tmp_path / "nowhere" / "filter.yaml"
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert f"{path}: no such filter spec file" in str(err.value)
    assert "pass a filter.yaml or a filter name" in str(err.value)


def test_parse_spec_names_the_given_path(tiny_spec_data, tmp_path):
    data = mutated(tiny_spec_data, lambda d: d["dimensions"][0].update(weight=0.4))
    with pytest.raises(SpecError, match=r"somewhere/filter\.yaml: invalid filter spec"):
        parse_spec(data, tmp_path / "somewhere" / "filter.yaml")


def test_spec_without_a_file_has_no_directory(tiny_spec_data):
    from filters.spec import FilterSpec

    spec = FilterSpec.model_validate(tiny_spec_data)
    with pytest.raises(SpecError, match="tiny/v1 was not loaded from a file"):
        _ = spec.artifacts_dir


# -- finding specs -------------------------------------------------------------------------------------------


@pytest.fixture
def spec_root(tiny_spec_data, tmp_path) -> Path:
    """A filters root holding tiny v1 and v2 and other v1."""
    write_spec(tmp_path, tiny_spec_data)
    write_spec(tmp_path, {**tiny_spec_data, "version": 2, "description": "second"})
    write_spec(tmp_path, {**tiny_spec_data, "name": "other"})
    return tmp_path


def test_spec_paths_and_available_are_sorted_by_name_and_version(spec_root):
    assert [p.relative_to(spec_root).as_posix() for p in spec_paths(spec_root)] == [
        "other/v1/filter.yaml",
        "tiny/v1/filter.yaml",
        "tiny/v2/filter.yaml",
    ]
    assert available(spec_root) == {"other": [1], "tiny": [1, 2]}


@pytest.mark.parametrize(
    ("ref", "version"),
    [("tiny", 2), ("tiny/v1", 1), ("tiny/v2", 2), ("tiny:1", 1)],
)
def test_resolve_by_name_and_version(spec_root, ref, version):
    spec = resolve_spec(ref, root=spec_root)
    assert (spec.name, spec.version) == ("tiny", version)


def test_resolve_by_file_and_directory_path(spec_root):
    file = spec_root / "tiny" / "v1" / "filter.yaml"
    assert resolve_spec(file, root=spec_root).key == "tiny/v1"
    assert resolve_spec(str(file.parent), root=spec_root).key == "tiny/v1"


def test_unknown_filter_lists_the_known_ones(spec_root):
    with pytest.raises(SpecError, match=r"unknown filter 'tinny'; known filters: other, tiny"):
        resolve_spec("tinny", root=spec_root)


def test_unknown_version_lists_the_shipped_versions(spec_root):
    with pytest.raises(SpecError, match=r"filter 'tiny' has no version 3; shipped versions: \[1, 2\]"):
        resolve_spec("tiny/v3", root=spec_root)


def test_shipped_root_resolves_sustainability_by_name():
    spec = resolve_spec("sustainability")
    assert spec.key == "sustainability/v1"
    assert spec.path is not None and spec.path.parts[-3:] == ("sustainability", "v1", "filter.yaml")


@pytest.mark.parametrize("ref", ["tiny/vx", "tiny:latest"])
def test_non_numeric_version_is_a_clear_spec_error(spec_root, ref):
    with pytest.raises(SpecError, match=r"shipped versions: \[1, 2\]"):
        resolve_spec(ref, root=spec_root)


def test_bare_name_that_is_a_local_directory_is_still_a_name(spec_root, tmp_path, monkeypatch):
    (tmp_path / "work" / "other2").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    with pytest.raises(SpecError, match="unknown filter 'other2'; known filters: other, tiny"):
        resolve_spec("other2", root=spec_root)


def test_a_bare_name_is_served_from_its_newest_trained_version(spec_root):
    from filters.spec import resolve_served, trained_specs

    assert trained_specs(spec_root) == {}
    assert resolve_served("tiny", root=spec_root).version == 2  # nothing trained: newest version
    (spec_root / "tiny" / "v1" / "artifacts").mkdir()
    (spec_root / "tiny" / "v1" / "artifacts" / "manifest.json").write_text("{}")
    assert {k: s.version for k, s in trained_specs(spec_root).items()} == {"tiny": 1}
    assert resolve_served("tiny", root=spec_root).version == 1
    assert resolve_served("tiny/v2", root=spec_root).version == 2  # an explicit version is kept


def test_resolve_served_parses_once_and_follows_newly_trained_versions(spec_root, monkeypatch):
    import filters.spec as spec_mod

    spec_mod.clear_served_cache()
    calls = []
    real_load = spec_mod.load_spec
    monkeypatch.setattr(spec_mod, "load_spec", lambda path: calls.append(path) or real_load(path))
    first = spec_mod.resolve_served("tiny", root=spec_root)
    assert spec_mod.resolve_served("tiny", root=spec_root) is first and len(calls) == 1  # cached, not re-parsed
    (spec_root / "tiny" / "v1" / "artifacts").mkdir()
    (spec_root / "tiny" / "v1" / "artifacts" / "manifest.json").write_text("{}")
    assert spec_mod.resolve_served("tiny", root=spec_root).version == 1  # a new trained version is picked up
    spec_mod.clear_served_cache()
    assert spec_mod.resolve_served("tiny", root=spec_root).version == 1


def test_spotcheck_scores_the_oracle_with_the_served_spec():
    """The spot-check's WA for oracle scores uses what the worker serves (uplifting v1, trained), not the newest
    version (v7, other dimensions and weights)."""
    from filters.postfilter import postfilter
    from filters.spec import resolve_served
    from monitoring.spotcheck import spec_weighted

    served = resolve_served("uplifting")
    assert served.key != resolve_spec("uplifting").key
    scores = {d: float(i) for i, d in enumerate(served.dimension_names)}
    assert spec_weighted("uplifting", scores) == pytest.approx(postfilter(served, scores).weighted_average)
