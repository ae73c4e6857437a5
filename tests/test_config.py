"""Every configuration value checked at start (brightflow.config): types, finite numbers, physical ranges,
and the ranges that depend on the recordings once their headers are read. Each error names the key,
the value and the valid range."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import REPO, write_config, write_stack

from brightflow import config as bconfig
from brightflow import simulate

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def _complete(**sections):
    """The default config with ``sections`` merged in (as the workflow has it after the schema's defaults)."""
    values = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for key, value in sections.items():
        if isinstance(value, dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return values


@pytest.mark.parametrize(
    "section, key, path",
    [
        ("nb", {"gamma": float("nan")}, "nb.gamma"),
        ("nb", {"detector": {"offset": float("inf"), "s_factor": 1.0, "readout_variance": 0.0}}, "nb.detector.offset"),
        ("nb", {"monomer_brightness": float("nan")}, "nb.monomer_brightness"),
        ("bleach_correction", {"parameter": float("inf")}, "bleach_correction.parameter"),
        ("segmentation", {"threshold": {"smoothing_sigma": float("nan")}}, "segmentation.threshold.smoothing_sigma"),
    ],
)
def test_nan_and_infinity_are_refused_naming_the_key(section, key, path):
    values = _complete(**{section: key})
    with pytest.raises(bconfig.ConfigError, match=rf"config key {path} is (nan|inf): a finite number is needed"):
        bconfig.check(values, SCHEMA)


def test_yaml_numbers_written_with_an_exponent_are_numbers():
    """YAML 1.1 reads 1.0e9 as text; the key asks for a number, so it is one."""
    read = yaml.safe_load("quality: {saturation_level: 1.0e9}\nnb: {gamma: 3.5e-1}\n")
    assert read["quality"]["saturation_level"] == "1.0e9"
    values = bconfig.check(_complete(**read), SCHEMA)
    assert values["quality"]["saturation_level"] == 1.0e9 and values["nb"]["gamma"] == 0.35


def test_the_bleach_parameter_is_checked_for_its_method():
    # an exponential time constant of 0.3 frames keeps only the frame itself: B would be 0
    with pytest.raises(
        bconfig.ConfigError,
        match=r"bleach_correction.parameter is 0.3 with method exponential: "
        r"the exponential tau must be 'auto' or a number >= 1",
    ):
        bconfig.check_physics(_complete(bleach_correction={"method": "exponential", "parameter": 0.3}))
    with pytest.raises(bconfig.ConfigError, match="must be a whole number"):
        bconfig.check_physics(_complete(bleach_correction={"method": "boxcar", "parameter": 2.5}))
    bconfig.check_physics(_complete(bleach_correction={"method": "polynomial", "parameter": 500}))  # frames unknown


def test_the_ranges_that_depend_on_the_recordings():
    stacks = {"short": (50, 64, 64), "long": (600, 64, 64)}
    with pytest.raises(
        bconfig.ConfigError,
        match=r"nb.timeseries.frames_per_set is 200, but experiment 'short' has "
        r"only 50 frames: a window must hold at most the recording \(2 to 50\)",
    ):
        bconfig.check_against_stacks(_complete(nb={"timeseries": {"frames_per_set": 200, "overlap": 0}}), stacks)
    with pytest.raises(
        bconfig.ConfigError,
        match=r"bleach_correction.parameter is 500, but experiment 'short' has 50 "
        r"frames: polynomial degree 500 needs at least 502 frames",
    ):
        bconfig.check_against_stacks(_complete(bleach_correction={"method": "polynomial", "parameter": 500}), stacks)
    with pytest.raises(
        bconfig.ConfigError,
        match=r"segmentation.erode_pixels is 100000, but experiment 'short' is "
        r"64 x 64 pixels.*at most 31",
    ):
        bconfig.check_against_stacks(_complete(segmentation={"erode_pixels": 100000}), stacks)
    bconfig.check_against_stacks(
        _complete(nb={"timeseries": {"frames_per_set": 50, "overlap": 0}}, segmentation={"erode_pixels": 31}), stacks
    )


def test_the_workflow_refuses_such_values_at_start(run_workflow, tmp_path):
    """As a user meets it: the run stops before any job, naming the key; no settings.json ever holds NaN."""
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    write_stack(stacks / "cells.tif", simulate.demo_experiment([(2.0, 5.0)], seed=2, shape=(48, 48), frames=50)[0])
    (tmp_path / "nan.yaml").write_text(f"input_dir: {stacks}\nsegmentation: {{threshold: {{smoothing_sigma: .nan}}}}\n")
    result = run_workflow(tmp_path, "--dry-run", "--configfile", tmp_path / "nan.yaml", check=False)
    assert result.returncode != 0
    assert "config key segmentation.threshold.smoothing_sigma is nan: a finite number is needed" in (
        result.stdout + result.stderr
    )
    windows = write_config(
        tmp_path / "windows.yaml", input_dir=str(stacks), nb={"timeseries": {"frames_per_set": 200, "overlap": 0}}
    )
    result = run_workflow(tmp_path, "--dry-run", "--configfile", windows, check=False)
    assert result.returncode != 0
    assert "nb.timeseries.frames_per_set is 200, but experiment 'cells' has only 50 frames" in " ".join(
        (result.stdout + result.stderr).split()
    )
    assert not list(tmp_path.rglob("settings.json"))
    ok = write_config(tmp_path / "ok.yaml", input_dir=str(stacks), quality={"saturation_level": "1.0e9"})
    run_workflow(tmp_path, "--configfile", ok)
    settings = json.loads((tmp_path / "results" / "cells" / "settings.json").read_text())
    assert settings["parameters"]["quality"]["saturation_level"] == 1.0e9
