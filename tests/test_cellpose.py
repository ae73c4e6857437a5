"""Cellpose segmentation (on the CPU) and the cellpose-GUI correction loop.

Cellpose cannot download pretrained weights here, so the session trains a tiny model once on
simulated cells with cellpose's own training API and the workflow runs with that file.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import gui_helpers
import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers import jobs_run, write_config, write_stack

from brightflow import cellpose_adapter, segment, simulate

pytest.importorskip("cellpose")

#: Cells of the simulated fields: half-axes 8 to 11 pixels, so a diameter of about 19 pixels.
DIAMETER = 19.0


def _field(seed, shape=(96, 96), cells=7, touching_pairs=3, frames=50):
    rng = np.random.default_rng(seed)
    truth = simulate.cell_field(shape, cells, rng, touching_pairs=touching_pairs)
    return truth, rng


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    """An empty cellpose models folder for the whole session (never the home folder)."""
    folder = tmp_path_factory.mktemp("cellpose_models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(folder))
        yield folder


@pytest.fixture(scope="session")
def tiny_model(models_dir, tmp_path_factory):
    """A cellpose model trained here on 16 simulated 128x128 projections (about a minute on 2 cores).

    Facts measured with cellpose 3.1.1.2: a net built with ``pretrained_model=False`` needs no
    download; 50 epochs reach precision and recall 1.0 on new images (20 are not enough).
    """
    import torch
    from cellpose import models, train

    torch.manual_seed(0)
    images, labels = [], []
    for seed in range(16):
        truth, rng = _field(1000 + seed, shape=(128, 128), cells=9, touching_pairs=2)
        images.append(simulate.cell_field_projection(truth, rng, frames=50))
        labels.append(segment.relabel_sequential(truth))
    net = models.CellposeModel(gpu=False, pretrained_model=False, diam_mean=17.0)
    folder = tmp_path_factory.mktemp("tiny_model")
    path = train.train_seg(
        net.net, train_data=images, train_labels=labels, channels=[0, 0], n_epochs=50,
        batch_size=8, bsize=64, learning_rate=0.005, min_train_masks=1,
        save_path=str(folder), model_name="tiny_cells",
    )[0]  # fmt: skip
    assert os.path.isfile(path)
    return str(path)


def test_models_folder_is_cellposes(models_dir):
    import importlib

    from cellpose import models

    # cellpose reads CELLPOSE_LOCAL_MODELS_PATH when imported (maybe before the fixture set it):
    # reload it to compare its folder with brightflow's
    assert cellpose_adapter.models_folder() == models_dir
    assert cellpose_adapter.models_folder({}) == models.Path.home() / ".cellpose" / "models"
    assert set(cellpose_adapter.BUILTIN_MODELS) == set(importlib.reload(models).MODEL_NAMES)
    assert models.MODEL_DIR == models_dir


def test_missing_model_file_is_a_clear_error_and_nothing_is_downloaded(models_dir, tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(cellpose_adapter.ModelNotFoundError, match="not found") as error:
        cellpose_adapter.segment(np.zeros((32, 32)), str(missing), gpu=False)
    assert str(missing) in str(error.value) and "CELLPOSE_LOCAL_MODELS_PATH" in str(error.value)
    with pytest.raises(cellpose_adapter.ModelNotFoundError) as error:
        cellpose_adapter.resolve_model("cyto3")
    assert str(models_dir / "cyto3") in str(error.value)
    with pytest.raises(cellpose_adapter.ModelNotFoundError, match="neither"):
        cellpose_adapter.resolve_model("my_model")
    assert list(models_dir.iterdir()) == []  # nothing was downloaded


def test_builtin_name_resolves_to_cached_weights(tmp_path):
    (tmp_path / "nucleitorch_0").write_bytes(b"weights")
    (tmp_path / "size_nucleitorch_0.npy").write_bytes(b"size")
    spec = cellpose_adapter.resolve_model("nuclei", environ={"CELLPOSE_LOCAL_MODELS_PATH": str(tmp_path)})
    assert spec.builtin and spec.weights == str(tmp_path / "nucleitorch_0")
    assert spec.size_model == str(tmp_path / "size_nucleitorch_0.npy")


@pytest.mark.skipif(cellpose_adapter.cuda_available(), reason="this machine has CUDA")
def test_gpu_true_without_cuda_is_a_clear_error():
    with pytest.raises(cellpose_adapter.GpuUnavailableError, match="no CUDA device") as error:
        cellpose_adapter.select_device(True)
    assert "segmentation.gpu: auto" in str(error.value)
    assert cellpose_adapter.select_device("auto")[1] == "cpu"
    assert cellpose_adapter.select_device(False)[1] == "cpu"
    assert cellpose_adapter.will_use_gpu("auto") is False
    with pytest.raises(ValueError):
        cellpose_adapter.select_device("yes")


def test_tiny_model_segments_new_simulated_cells(tiny_model):
    for seed, diameter in ((1, DIAMETER), (2, 0)):  # 0: the model's training diameter
        truth, rng = _field(seed)
        projection = simulate.cell_field_projection(truth, rng, frames=50)
        result = cellpose_adapter.segment(projection, tiny_model, diameter=diameter, gpu="auto")
        scores = segment.match_scores(truth, result.masks)
        assert scores["recall"] >= 0.9, scores
        assert scores["mean_iou"] >= 0.85, scores
        assert result.device == "cpu" or result.device.startswith("cuda")
        assert result.diameter_source == ("setting" if diameter else "model training diameter")


def test_outlines_match_cellposes(tiny_model):
    from cellpose import utils

    truth, _ = _field(5)
    truth[:6, 40:60] = truth.max() + 1  # a cell on the image border
    ours = segment.outline_polygons(truth)
    theirs = utils.outlines_list(truth, multiprocessing=False)
    assert len(ours) == len(theirs) == len(np.unique(truth)) - 1
    for a, b in zip(ours.values(), theirs):
        assert np.array_equal(a, b)


def _cellpose_config(tmp_path, model, **extra):
    return write_config(
        tmp_path / "config.yaml",
        input_dir=str(tmp_path / "stacks"),
        output_dir="out",
        segmentation={"method": "cellpose", "model": model, "diameter": DIAMETER, "gpu": "auto"} | extra,
    )


@pytest.fixture(scope="module")
def cellpose_run(run_workflow, tiny_model, tmp_path_factory):
    """One cellpose workflow run shared by this module's tests of its results.

    The GUI test corrects these masks and reruns the workflow, so it comes after the tests
    that read the first run (pytest runs a module's tests in the order they are written).
    """
    workdir = tmp_path_factory.mktemp("cellpose_run")
    truth, rng = _field(7)
    stack = simulate.cell_field_stack(truth, 50, rng)
    (workdir / "stacks").mkdir()
    write_stack(workdir / "stacks" / "cells.tif", stack)
    config = _cellpose_config(workdir, tiny_model)
    first = run_workflow(workdir, "--configfile", config)
    assert jobs_run(first).get("segmentation") == 1
    return SimpleNamespace(workdir=workdir, config=config, truth=truth, stack=stack, folder=workdir / "out" / "cells")


@pytest.mark.workflow
def test_cellpose_workflow_writes_cellposes_seg_npy(cellpose_run, tiny_model):
    folder = cellpose_run.folder
    seg_path = folder / "segmentation_image_seg.npy"
    # the segmentation is right, and saved as cellpose's own _seg.npy (that the GUI opens)
    labels = tifffile.imread(folder / "segmentation_labels.tif")
    assert labels.dtype == np.uint16
    scores = segment.match_scores(cellpose_run.truth, labels)
    assert scores["recall"] >= 0.9 and scores["mean_iou"] >= 0.85, scores
    seg = np.load(seg_path, allow_pickle=True).item()
    # the image's name relative to the output folder: the same wherever the results are written
    assert seg["filename"] == f"{folder.name}/segmentation_image.tif"
    assert {"masks", "outlines", "flows", "chan_choose", "ismanual", "diameter", "est_diam"} <= set(seg)
    assert seg["est_diam"] == seg["diameter"] == DIAMETER  # the diameter cellpose ran at
    assert np.array_equal(seg["masks"], labels)
    settings = json.loads((folder / "settings.json").read_text())
    used = settings["segmentation_used"]
    assert used["method"] == "cellpose" and used["device"] == "cpu"
    assert used["model_file"] == tiny_model and used["diameter"] == DIAMETER
    assert used["edited_after_segmentation"] is False
    count = int(labels.max())
    assert len((folder / "segmentation_image_cp_outlines.txt").read_text().splitlines()) == count
    from roifile import roiread

    assert len(roiread(folder / "cell_rois.zip")) == count
    assert len(pd.read_csv(folder / "average_values_in_roi.csv")) == count


@pytest.mark.workflow
def test_cellpose_masks_corrected_in_the_cellpose_gui(run_workflow, cellpose_run, cellpose_gui):
    """The README's correction loop on cellpose's masks, with the real GUI and the mouse."""
    workdir, config, folder = cellpose_run.workdir, cellpose_run.config, cellpose_run.folder
    seg_path = folder / "segmentation_image_seg.npy"
    labels = tifffile.imread(folder / "segmentation_labels.tif")
    count = int(labels.max())
    before = pd.read_csv(folder / "average_values_in_roi.csv")
    gui = gui_helpers.load_seg(cellpose_gui, seg_path)
    gui_helpers.assert_shows_results(gui, folder, cellpose_run.stack.mean(axis=0), DIAMETER)

    # the user edits the masks in the GUI with the mouse and saves (Ctrl+S): merge cells 1 and 2
    # (click 1, Alt+click 2), delete cell 3 (Ctrl+click)
    one, two, three = (gui_helpers.pixel_inside(labels, k) for k in (1, 2, 3))
    gui_helpers.click(gui, *one)
    gui_helpers.click(gui, *two, modifier="alt")
    gui_helpers.click(gui, *three, modifier="ctrl")
    assert int(gui.ncells) == count - 2
    gui_helpers.save(gui)
    masks = segment.relabel_sequential(np.where(labels == 2, 1, np.where(labels == 3, 0, labels)))
    merged_pixels = int(((labels == 1) | (labels == 2)).sum())
    assert np.array_equal(np.load(seg_path, allow_pickle=True).item()["masks"], masks)

    second = run_workflow(workdir, "--configfile", config)
    jobs = jobs_run(second)
    assert "segmentation" not in jobs and "projection" not in jobs, jobs
    for rule in (
        "segmentation_exports", "analysis_mask", "bleach_correction", "nb_maps", "tables", "figures",
        "settings", "aggregate",
    ):  # fmt: skip
        assert jobs.get(rule) == 1, (rule, jobs)
    assert np.array_equal(segment.masks_from_seg_dict(np.load(seg_path, allow_pickle=True).item()), masks)
    assert np.array_equal(tifffile.imread(folder / "segmentation_labels.tif"), masks)
    after = pd.read_csv(folder / "average_values_in_roi.csv")
    assert len(after) == count - 2
    assert after.loc[after["Cell ID"] == 1, "Pixels"].item() == merged_pixels
    assert list(after["Pixels"])[1:] == [p for k, p in enumerate(before["Pixels"], 1) if k > 3]
    assert len((folder / "segmentation_image_cp_outlines.txt").read_text().splitlines()) == count - 2
    folder_table = pd.read_csv(workdir / "out" / "Folder_average_values_in_roi.csv")
    assert list(folder_table["Pixels"]) == list(after["Pixels"])
    used = json.loads((folder / "settings.json").read_text())["segmentation_used"]
    assert used["edited_after_segmentation"] is True and used["cells"] == count - 2
    assert used["cells_segmented"] == count and used["method"] == "cellpose"

    third = run_workflow(workdir, "--configfile", config)
    assert jobs_run(third) == {}  # nothing left to do

    # the corrected file, as the GUI saved it, opens in the GUI again
    gui = gui_helpers.load_seg(cellpose_gui, seg_path)
    assert gui.loaded is True and int(gui.ncells) == count - 2
    assert np.array_equal(gui.cellpix[0], masks)


@pytest.mark.workflow
def test_missing_builtin_weights_stop_the_workflow_with_a_clear_message(run_workflow, models_dir, tmp_path):
    truth, rng = _field(8, shape=(48, 48), cells=2, touching_pairs=0)
    (tmp_path / "stacks").mkdir()
    write_stack(tmp_path / "stacks" / "cells.tif", simulate.cell_field_stack(truth, 10, rng))
    result = run_workflow(tmp_path, "--configfile", _cellpose_config(tmp_path, "cyto3"), check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "built-in cellpose model" in output and str(models_dir / "cyto3") in output
    assert "CELLPOSE_LOCAL_MODELS_PATH" in output
    assert list(models_dir.iterdir()) == []


@pytest.mark.workflow
def test_segmentation_declares_a_gpu_only_when_it_uses_one(run_workflow, tmp_path, models_dir):
    (tmp_path / "stacks").mkdir()
    write_stack(tmp_path / "stacks" / "cells.tif", np.ones((5, 16, 16), np.uint16))
    expected = {"true": 1, "false": 0, "auto": int(cellpose_adapter.cuda_available())}
    for setting, gpus in expected.items():
        config = _cellpose_config(tmp_path, "cyto3", gpu={"true": True, "false": False}.get(setting, setting))
        result = run_workflow(tmp_path, "--configfile", config, "--dry-run")
        block = (result.stdout + result.stderr).split("rule segmentation:")[1].split("\n\n")[0]
        assert f"gpu={gpus}" in block, (setting, block)
