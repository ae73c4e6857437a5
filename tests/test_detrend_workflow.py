"""Bleach correction in the workflow: outputs, recorded choices and what reruns."""

from __future__ import annotations

import json

import numpy as np
from conftest import jobs_run, run_workflow, write_config, write_stack

from brightflow import simulate


def _bleached_experiment(folder):
    """One 48x48, 60-frame recording: a bright disc of immobile signal that bleaches 40%."""
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:48, :48]
    disc = (yy - 24) ** 2 + (xx - 24) ** 2 < 15**2
    mean_map = np.where(disc, 30.0, 1.0)
    stack = simulate.immobile_stack(mean_map, 60, rng, survival=simulate.exponential_bleach(60, 0.4))
    folder.mkdir()
    write_stack(folder / "bleached.tif", stack.astype(np.uint16))
    return disc


def test_bleach_correction_outputs_and_reruns(tmp_path):
    disc = _bleached_experiment(tmp_path / "input")
    base = {"input_dir": str(tmp_path / "input"), "output_dir": "results"}
    config = write_config(tmp_path / "boxcar.yaml", **base, bleach_correction={"method": "boxcar"})
    run_workflow(tmp_path, "--configfile", config)
    folder = tmp_path / "results" / "bleached"
    model = json.loads((folder / "bleach_correction.json").read_text())
    assert model["method"] == "boxcar"
    assert model["parameter_source"].startswith("auto") and model["parameter"] >= 1
    assert model["seed"] == 1
    assert len(model["trace"]) == len(model["corrected_trace"]) == len(model["trend"]) == 60
    assert (folder / "Bleach_correction.png").stat().st_size > 0
    brightness = np.load(folder / "apparent_brightness.npy")
    assert abs(np.nanmean(brightness[disc]) - 1.0) < 0.1

    config = write_config(
        tmp_path / "robinhood.yaml", **base, bleach_correction={"method": "robinhood", "parameter": 5000, "seed": 3}
    )
    result = run_workflow(tmp_path, "--configfile", config)
    ran = jobs_run(result)
    for rule in ("bleach_correction", "nb_maps", "figures", "tables", "settings", "aggregate"):
        assert ran.get(rule) == 1, (rule, ran)
    for rule in ("projection", "segmentation", "analysis_mask"):
        assert rule not in ran, (rule, ran)
    model = json.loads((folder / "bleach_correction.json").read_text())
    assert (model["method"], model["parameter"], model["seed"]) == ("robinhood", 5000, 3)
    assert model["swaps_done"] == 5000
    assert "configuration" in model["parameter_source"]
    plan = np.load(folder / "bleach_correction_swaps.npy")
    assert plan.shape == (48, 2, 60) and plan[:, 0].sum() == plan[:, 1].sum() == 5000
    settings = json.loads((folder / "settings.json").read_text())
    assert settings["bleach_correction_used"]["method"] == "robinhood"

    again = run_workflow(tmp_path, "--configfile", config)
    assert jobs_run(again) == {}
