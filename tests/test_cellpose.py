"""Cellpose segmentation with both generations (on the CPU), and the cellpose-GUI correction loop.

Cellpose cannot download pretrained weights here, so:

* cellpose 3: the session trains a tiny model once on simulated cells with cellpose 3's own
  training API, and the workflow runs with that file;
* cellpose 4: Cellpose-SAM's whole network with seeded random weights, from a partial state
  dict of 146 KiB made here (cellpose 4 loads files non-strictly). It finds no cells, so the
  tests of cellpose 4 check everything but the masks' quality; ``BRIGHTFLOW_CPSAM_WEIGHTS``
  (the path of the real ``cpsam`` file) runs the test with real weights, skipped otherwise.

Cellpose 4 runs in its own process with the overlay ``.cellpose4`` (``make venv``) first on
``PYTHONPATH``; its evaluations here are one tile each (images of at most 240 pixels).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import gui_helpers
import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers import REPO, jobs_run, write_config, write_stack

from brightflow import cellpose_adapter, cellpose_models, cellpose_worker, segment, simulate

pytest.importorskip("cellpose")

#: Cells of the simulated fields: half-axes 8 to 11 pixels, so a diameter of about 19 pixels.
DIAMETER = 19.0

#: The packages a cellpose 4 job must take from the overlay, and not from brightflow's environment.
OVERLAY_PACKAGES = ("cellpose", "torchvision", "segment_anything")


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
def overlay():
    """Cellpose 4's overlay folder, made by `make venv` (which `make test` runs first)."""
    folder = REPO / ".cellpose4"
    if not (folder / ".installed").is_file():
        pytest.fail(f"cellpose 4's overlay {folder} is missing: run `make venv` (make test does)")
    return folder


@pytest.fixture(scope="session")
def tiny_model(models_dir, tmp_path_factory):
    """A cellpose 3 model trained here on 16 simulated 128x128 projections (about a minute on 2 cores).

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


@pytest.fixture(scope="session")
def random_cpsam(tmp_path_factory):
    """A cellpose 4 model file: a partial Cellpose-SAM state dict (``W2``, the diameters).

    Cellpose 4 builds the whole 304.6 M-parameter network and loads these keys over it; the
    worker seeds torch first, so the other weights are the same random ones in every run.
    """
    import torch

    path = tmp_path_factory.mktemp("cpsam") / "random_cpsam.pt"
    torch.save({"W2": torch.eye(192).reshape(192, 3, 8, 8), "diam_mean": torch.tensor([30.0]),
                "diam_labels": torch.tensor([30.0])}, path)  # fmt: skip
    assert path.stat().st_size < 200_000
    return str(path)


def _in_cellpose4(overlay, code, timeout=600):
    """Run ``code`` in a Python with cellpose 4's overlay first on PYTHONPATH (as the worker runs);
    it prints one JSON line last, which is returned."""
    env = cellpose_worker.worker_environment(4, overlay)
    process = subprocess.run([sys.executable, "-s", "-c", code], env=env, capture_output=True, text=True,
                             timeout=timeout)  # fmt: skip
    assert process.returncode == 0, process.stderr[-6000:]
    return json.loads(process.stdout.strip().splitlines()[-1])


# --- which model, which generation ----------------------------------------------------------------


def _save_state(path, keys, legacy=False):
    import torch

    torch.save({key: torch.zeros(1) for key in keys}, path, _use_new_zipfile_serialization=not legacy)
    return path


def test_generation_is_told_from_the_files_keys(tiny_model, random_cpsam, tmp_path):
    keys = cellpose_models.state_dict_keys(tiny_model)
    assert "W2" not in keys and any(k.startswith("downsample.") for k in keys) and len(keys) > 300
    assert cellpose_models.generation_of_file(tiny_model) == 3
    assert cellpose_models.generation_of_file(random_cpsam) == 4
    # a fine-tuned Cellpose-SAM's keys (and saved from DataParallel), in torch's legacy format too
    sam = ["W2", "diam_mean", "encoder.pos_embed", "encoder.blocks.0.attn.qkv.weight", "out.weight"]
    assert cellpose_models.generation_of_file(_save_state(tmp_path / "sam", sam)) == 4
    assert cellpose_models.generation_of_file(_save_state(tmp_path / "dp", [f"module.{k}" for k in sam])) == 4
    assert cellpose_models.generation_of_file(_save_state(tmp_path / "old", sam, legacy=True)) == 4
    legacy3 = _save_state(tmp_path / "old3", ["downsample.down.res_down_0.conv.conv_0.0.weight"], legacy=True)
    assert not zipfile.is_zipfile(legacy3) and cellpose_models.generation_of_file(legacy3) == 3
    with pytest.raises(cellpose_models.WrongModelError, match="Cellpose-DINO"):
        cellpose_models.generation_of_file(_save_state(tmp_path / "dino", sam + ["encoder.cls_token"]))
    with pytest.raises(cellpose_models.WrongModelError, match="not a cellpose model"):
        cellpose_models.generation_of_file(_save_state(tmp_path / "other", ["fc.weight", "fc.bias"]))
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(cellpose_models.WrongModelError, match="not a cellpose model: not a file saved by torch"):
        cellpose_models.generation_of_file(tmp_path / "notes.txt")
    truncated = tmp_path / "truncated"
    truncated.write_bytes((tmp_path / "old").read_bytes()[:40])
    with pytest.raises(cellpose_models.WrongModelError, match="cannot be read as a torch state dict"):
        cellpose_models.generation_of_file(truncated)


def test_model_keys_are_read_without_running_the_files_code(tmp_path):
    """A model file is a pickle: reading its keys builds dicts only, it never imports or calls
    what the file names (torch.load(weights_only=False) would run os.system here)."""
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"W2": Evil()}))
    with pytest.raises(cellpose_models.WrongModelError, match="not part of a torch state dict"):
        cellpose_models.generation_of_file(path)
    assert not (tmp_path / "ran").exists()


def test_names_and_folder_files_resolve_to_their_generation(tiny_model, random_cpsam, tmp_path):
    environ = {"CELLPOSE_LOCAL_MODELS_PATH": str(tmp_path)}
    # a missing built-in model: the one command that fetches it, and where the file lands
    for name, generation in (("cpsam", 4), ("cyto3", 3)):
        with pytest.raises(cellpose_models.ModelNotFoundError) as error:
            cellpose_models.resolve_model(name, environ, python="/py/bin/python", overlay="/bf/.cellpose4")
        message = str(error.value)
        assert f"built-in cellpose {generation}" in message and str(tmp_path / name) in message
        command = f"/py/bin/python -m brightflow.cellpose_adapter fetch {name}"
        assert command in message and ("PYTHONPATH=/bf/.cellpose4 " + command in message) == (generation == 4)
    with pytest.raises(cellpose_models.WrongModelError, match="dinov3"):
        cellpose_models.resolve_model("cpdino", environ)
    with pytest.raises(cellpose_models.ModelNotFoundError, match="neither"):
        cellpose_models.resolve_model("my_model", environ)
    with pytest.raises(cellpose_models.ModelNotFoundError, match="not found"):
        cellpose_models.resolve_model(str(tmp_path / "no_such.pt"), environ)
    # built-in names and the user's models in the folder, by their files' keys
    (tmp_path / "cpsam").write_bytes(Path(random_cpsam).read_bytes())
    (tmp_path / "nucleitorch_0").write_bytes(Path(tiny_model).read_bytes())
    (tmp_path / "size_nucleitorch_0.npy").write_bytes(b"size")
    (tmp_path / "my_sam").write_bytes(Path(random_cpsam).read_bytes())
    assert cellpose_models.resolve_model("cpsam", environ) == cellpose_models.ModelSpec(
        "cpsam", str(tmp_path / "cpsam"), 4
    )
    nuclei = cellpose_models.resolve_model("nuclei", environ)
    assert (nuclei.generation, nuclei.builtin, nuclei.size_model) == (3, True, str(tmp_path / "size_nucleitorch_0.npy"))
    assert cellpose_models.resolve_model("my_sam", environ).generation == 4
    assert cellpose_models.resolve_model(tiny_model, environ).generation == 3
    # a name whose file holds the other generation's network
    (tmp_path / "cyto3").write_bytes(Path(random_cpsam).read_bytes())
    with pytest.raises(cellpose_models.WrongModelError, match="cellpose 3 model name.*holds a cellpose 4 network"):
        cellpose_models.resolve_model("cyto3", environ)
    (tmp_path / "cpsam_v2").write_bytes(Path(tiny_model).read_bytes())
    with pytest.raises(cellpose_models.WrongModelError, match="cellpose 4 model name.*holds a cellpose 3 network"):
        cellpose_models.resolve_model("cpsam_v2", environ)


def test_models_folder_is_cellposes(models_dir):
    import importlib

    from cellpose import models

    # cellpose reads CELLPOSE_LOCAL_MODELS_PATH when imported (maybe before the fixture set it):
    # reload it to compare its folder with brightflow's
    assert cellpose_models.models_folder() == models_dir
    assert cellpose_models.models_folder({}) == models.Path.home() / ".cellpose" / "models"
    assert set(cellpose_adapter.BUILTIN_MODELS) == set(importlib.reload(models).MODEL_NAMES)
    assert models.MODEL_DIR == models_dir


def test_pinned_versions_are_the_ones_installed_and_listed(overlay):
    pins = cellpose_models.PINNED_VERSIONS
    for path, generation in (("requirements.txt", 3), ("envs/cellpose.yaml", 3),
                             ("requirements-cellpose4.txt", 4), ("envs/cellpose4.yaml", 4)):  # fmt: skip
        assert f"cellpose=={pins[generation]}" in (REPO / path).read_text(), path
    assert cellpose_models.installed_version(3) == pins[3]
    assert cellpose_models.installed_version(4, overlay) == pins[4]
    assert cellpose_models.installed_version(4, conda=True) == pins[4]
    with pytest.raises(cellpose_models.ModelNotFoundError, match="make venv"):
        cellpose_models.installed_version(4, REPO / "no-overlay-here")


def test_cellpose4_in_its_overlay(overlay, models_dir):
    """In cellpose 4's own process: its names are brightflow's, brightflow's tile count is the one
    cellpose 4's run_net makes, and no name or missing file ever reaches cellpose's downloader."""
    result = _in_cellpose4(
        overlay,
        f"""
import json, os
import numpy as np, torch
from brightflow import cellpose_adapter, cellpose_models
imported = cellpose_adapter.import_cellpose(4, {str(overlay)!r})
from cellpose import core, models

class Counter(torch.nn.Module):  # cellpose 4's network stand-in: counts the tiles it is given
    def __init__(self):
        super().__init__()
        self.device, self.dtype, self.batches = torch.device("cpu"), torch.float32, []
    def forward(self, x):
        self.batches.append(x.shape[0])
        return torch.zeros(x.shape[0], 3, x.shape[2], x.shape[3]), torch.zeros(x.shape[0], 256)

tiles = []
for shape, diameter in [((96, 96), 0), ((240, 240), 0), ((256, 256), 0), ((300, 130), 0), ((512, 512), 0),
                        ((700, 333), 0), ((1024, 1024), 60), ((256, 256), 15), ((240, 240), 29)]:
    net = Counter()
    ours = cellpose_models.cellpose4_tiles(shape, diameter)
    batch = cellpose_models.cellpose4_batch_size(ours, "cpu")
    image = np.zeros((1,) + shape + (3,), np.float32)
    core.run_net(net, image, batch_size=batch, bsize=256, rsz=30 / diameter if diameter else None)
    tiles.append([ours, sum(net.batches), max(net.batches), batch])

refused = []
with cellpose_adapter._no_download():
    for attempt in (lambda: models.cache_model_path("cpsam_v2"),
                    lambda: models.CellposeModel(pretrained_model="/no/such/model")):
        try:
            attempt()
            refused.append("no error")
        except cellpose_models.ModelNotFoundError as error:
            refused.append(str(error))
print(json.dumps({{"version": imported["version"], "names": models.MODEL_NAMES, "tiles": tiles,
                  "refused": refused, "models_dir": str(models.MODEL_DIR)}}))
""",
    )
    assert result["version"] == cellpose_models.PINNED_VERSIONS[4]
    assert set(result["names"]) == set(cellpose_models.CELLPOSE4_MODELS) | set(cellpose_models.CELLPOSE4_DINO_MODELS)
    for ours, theirs, largest_batch, batch in result["tiles"]:
        assert ours == theirs and largest_batch <= batch
    assert [row[0] for row in result["tiles"][:3]] == [1, 1, 4]  # up to 240 pixels: one tile; 256: four
    # cellpose 4's fall-back for a missing file, cpsam_v2, would be a download: refused
    assert all("brightflow never downloads weights" in message for message in result["refused"]), result
    assert all("cpsam_v2" in message for message in result["refused"])
    assert result["models_dir"] == str(models_dir) and list(models_dir.iterdir()) == []


def test_fetch_command_runs_each_generations_own_downloader(overlay, tiny_model, random_cpsam, tmp_path):
    """The command a missing built-in model's message gives. Offline, cellpose's downloader finds the
    files already in the folder and returns their paths (with internet it downloads them there)."""
    (tmp_path / "cpsam").write_bytes(Path(random_cpsam).read_bytes())
    (tmp_path / "nucleitorch_0").write_bytes(Path(tiny_model).read_bytes())
    (tmp_path / "size_nucleitorch_0.npy").write_bytes(b"size")
    base = {"CELLPOSE_LOCAL_MODELS_PATH": str(tmp_path)}

    def fetch(name, generation):
        env = cellpose_worker.worker_environment(generation, overlay, os.environ | base)
        command = [sys.executable, "-s", "-m", "brightflow.cellpose_adapter", "fetch", name]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)

    four = fetch("cpsam", 4)
    assert four.returncode == 0 and four.stdout.split() == [str(tmp_path / "cpsam")], four.stderr[-3000:]
    three = fetch("nuclei", 3)
    assert three.stdout.split() == [str(tmp_path / "nucleitorch_0"), str(tmp_path / "size_nucleitorch_0.npy")]
    # each name needs its own generation's cellpose: cpsam without the overlay is refused
    wrong = fetch("cpsam", 3)
    assert wrong.returncode == 2 and "needs cellpose 4" in wrong.stderr and "3.1.1.2" in wrong.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cpsam", "nucleitorch_0", "size_nucleitorch_0.npy"]


def test_precision_is_chosen_by_device_and_setting(monkeypatch):
    import torch

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for native in (True, False):
        monkeypatch.setattr(cellpose_adapter, "cpu_has_bfloat16", lambda native=native: native)
        assert cellpose_adapter.select_precision("auto", cpu, 4) == ("bfloat16" if native else "float32")
        assert cellpose_adapter.select_precision("auto", cuda, 4) == "bfloat16"
        for forced in ("bfloat16", "float32"):
            assert cellpose_adapter.select_precision(forced, cpu, 4) == forced
        assert cellpose_adapter.select_precision("auto", cuda, 3) == "float32"
    with pytest.raises(ValueError, match="cellpose 3 runs in float32"):
        cellpose_adapter.select_precision("bfloat16", cpu, 3)
    with pytest.raises(ValueError):
        cellpose_adapter.select_precision("float16", cpu, 4)


# --- the worker's environment ---------------------------------------------------------------------


def test_worker_environment_puts_the_overlay_first_for_cellpose4_only(overlay):
    environ = {"PYTHONPATH": os.pathsep.join(["/somewhere", str(overlay)]), "HOME": "/home/x"}
    four = cellpose_worker.worker_environment(4, overlay, environ)
    assert four["PYTHONPATH"].split(os.pathsep) == [str(overlay), "/somewhere"]
    three = cellpose_worker.worker_environment(3, overlay, environ)
    assert three["PYTHONPATH"].split(os.pathsep) == ["/somewhere"]
    assert four["PYTHONNOUSERSITE"] == three["PYTHONNOUSERSITE"] == "1" and four["HOME"] == "/home/x"


def test_a_package_missing_from_the_overlay_is_not_taken_from_brightflows_environment(random_cpsam, tmp_path):
    """brightflow's environment holds cellpose 3: an overlay without cellpose 4 must stop the worker,
    not hand the cellpose 4 model to cellpose 3."""
    spec = cellpose_models.resolve_model(random_cpsam)
    empty = tmp_path / "overlay"
    empty.mkdir()
    image = np.zeros((32, 32), np.float32)
    with pytest.raises(cellpose_worker.WorkerError) as error:
        cellpose_worker.run(image, tmp_path / "image.tif", spec, 0, 0.4, 0.0, False, overlay=empty)
    message = str(error.value)
    assert "needs cellpose 4" in message and "cellpose 3.1.1.2" in message and str(empty) in message
    assert "make venv" in message and not (tmp_path / "image_seg.npy").exists()
    # and in this (cellpose 3) process, a cellpose 4 model is refused the same way
    with pytest.raises(cellpose_adapter.WrongEnvironmentError, match="needs cellpose 4"):
        cellpose_adapter.segment(image, spec, gpu=False)


def test_a_model_file_gone_after_the_start_is_not_replaced(random_cpsam, tmp_path, overlay):
    copy = tmp_path / "model.pt"
    copy.write_bytes(Path(random_cpsam).read_bytes())
    spec = cellpose_models.resolve_model(str(copy))
    copy.unlink()
    with pytest.raises(cellpose_models.ModelNotFoundError, match="is gone"):
        cellpose_worker.run(np.zeros((32, 32)), tmp_path / "image.tif", spec, 0, 0.4, 0.0, False, overlay=overlay)


# --- cellpose 3 in this process -------------------------------------------------------------------


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
        assert result.precision == "float32" and result.cellpose["version"] == cellpose_models.PINNED_VERSIONS[3]


def test_outlines_match_cellposes(tiny_model):
    from cellpose import utils

    truth, _ = _field(5)
    truth[:6, 40:60] = truth.max() + 1  # a cell on the image border
    ours = segment.outline_polygons(truth)
    theirs = utils.outlines_list(truth, multiprocessing=False)
    assert len(ours) == len(theirs) == len(np.unique(truth)) - 1
    for a, b in zip(ours.values(), theirs, strict=False):
        assert np.array_equal(a, b)


# --- the workflow, with each generation ------------------------------------------------------------


def _cellpose_config(tmp_path, model, **extra):
    return write_config(
        tmp_path / "config.yaml",
        input_dir=str(tmp_path / "stacks"),
        output_dir="out",
        segmentation={"method": "cellpose", "model": model, "diameter": DIAMETER, "gpu": "auto"} | extra,
    )


def _job_imports(folder):
    """Each package the segmentation job's cellpose worker imported, and where from (its log)."""
    log = (folder.parent / "logs" / folder.name / "segmentation.log").read_text()
    return dict(re.findall(r"cellpose \d job: (\w+) from (\S+)", log))


def _run(run_workflow, workdir, model, shape=(96, 96), seed=7, **settings):
    truth, rng = _field(seed, shape=shape)
    stack = simulate.cell_field_stack(truth, 50, rng)
    (workdir / "stacks").mkdir()
    write_stack(workdir / "stacks" / "cells.tif", stack)
    config = _cellpose_config(workdir, model, **settings)
    first = run_workflow(workdir, "--configfile", config)
    assert jobs_run(first).get("segmentation") == 1
    return SimpleNamespace(
        workdir=workdir,
        config=config,
        truth=truth,
        stack=stack,
        folder=workdir / "out" / "cells",
        output=first.stdout + first.stderr,
    )


@pytest.fixture(scope="module")
def cellpose_run(run_workflow, tiny_model, tmp_path_factory):
    """One cellpose 3 workflow run shared by this module's tests of its results.

    The GUI tests correct these masks and rerun the workflow, so they come after the tests
    that read the first run (pytest runs a module's tests in the order they are written).
    """
    return _run(run_workflow, tmp_path_factory.mktemp("cellpose_run"), tiny_model)


@pytest.fixture(scope="module")
def cellpose4_run(run_workflow, random_cpsam, overlay, tmp_path_factory):
    """One cellpose 4 workflow run (Cellpose-SAM's network, random weights; one 96 x 96 tile), no rescaling."""
    return _run(run_workflow, tmp_path_factory.mktemp("cellpose4_run"), random_cpsam, diameter=0)


SEG_KEYS = {"masks", "outlines", "flows", "chan_choose", "ismanual", "diameter", "est_diam", "filename"}


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
    assert SEG_KEYS <= set(seg)
    assert seg["est_diam"] == seg["diameter"] == DIAMETER  # the diameter cellpose ran at
    assert np.array_equal(seg["masks"], labels)
    settings = json.loads((folder / "settings.json").read_text())
    used = settings["segmentation_used"]
    assert used["method"] == "cellpose" and used["device"] == "cpu"
    assert used["model_file"] == tiny_model and used["diameter"] == DIAMETER
    assert used["generation"] == 3 and used["cellpose_version"] == "3.1.1.2" and used["precision"] == "float32"
    assert used["edited_after_segmentation"] is False
    count = int(labels.max())
    assert len((folder / "segmentation_image_cp_outlines.txt").read_text().splitlines()) == count
    from roifile import roiread

    assert len(roiread(folder / "cell_rois.zip")) == count
    assert len(pd.read_csv(folder / "average_values_in_roi.csv")) == count
    # the job ran brightflow's cellpose 3, nothing from cellpose 4's overlay
    imports = _job_imports(folder)
    import cellpose
    import torch

    assert Path(imports["cellpose"]).parent == Path(cellpose.__file__).parent
    assert Path(imports["torch"]) == Path(torch.__file__)
    assert not any(".cellpose4" in path for path in imports.values()), imports
    assert "torchvision" not in imports


@pytest.mark.workflow
def test_cellpose4_workflow_writes_cellposes_seg_npy(cellpose4_run, random_cpsam, overlay):
    folder = cellpose4_run.folder
    shape = cellpose4_run.truth.shape
    record = json.loads((folder / "segmentation.json").read_text())
    expected_precision = "bfloat16" if cellpose_adapter.cpu_has_bfloat16() else "float32"
    assert record | {"cells": 0, "masks_sha256": ""} == {
        "method": "cellpose", "device": "cpu", "cells": 0, "masks_sha256": "",
        "model": random_cpsam, "model_file": random_cpsam, "generation": 4, "cellpose_version": "4.2.1.1",
        "precision": expected_precision, "precision_setting": "auto", "diameter": 30.0,
        "diameter_source": "no rescaling", "flow_threshold": 0.4, "cellprob_threshold": 0.0, "gpu_setting": "auto",
        "tiles": 1, "batch_size": 1,
    }  # fmt: skip
    used = json.loads((folder / "settings.json").read_text())["segmentation_used"]
    assert (used["generation"], used["cellpose_version"], used["precision"]) == (4, "4.2.1.1", expected_precision)
    assert json.loads((folder / "settings.json").read_text())["versions"]["cellpose"] == "4.2.1.1"
    # cellpose 4's own _seg.npy, with the diameter it ran at (cellpose 4's writer puts NaN)
    seg = np.load(folder / "segmentation_image_seg.npy", allow_pickle=True).item()
    assert SEG_KEYS <= set(seg) and seg["filename"] == f"{folder.name}/segmentation_image.tif"
    assert seg["est_diam"] == seg["diameter"] == 30.0
    assert seg["masks"].shape == seg["outlines"].shape == shape and seg["masks"].dtype == np.uint16
    assert (
        int(seg["masks"].max())
        == record["cells"]
        == json.loads((folder / "settings.json").read_text())["segmentation_used"]["cells"]
    )
    flows = seg["flows"]  # the GUI's flow views: RGB flows, cell probability, ..., dP and cellprob
    assert flows[0].shape == (1,) + shape + (3,) and flows[1].shape == (1,) + shape
    assert flows[-1].shape == (3,) + shape and np.isfinite(flows[-1]).all()
    # the job imported cellpose 4, torchvision and segment_anything from the overlay, torch and numpy
    # from brightflow's environment
    imports = _job_imports(folder)
    import torch

    for package in OVERLAY_PACKAGES:
        assert overlay.resolve() in Path(imports[package]).resolve().parents, (package, imports)
    assert Path(imports["torch"]) == Path(torch.__file__)
    assert len(pd.read_csv(folder / "average_values_in_roi.csv")) == 0  # random weights: no cell
    # the job asked for cellpose 4's memory and a run time for its one tile (the projection's size,
    # known once the projection exists)
    block = cellpose4_run.output.split("rule segmentation:")[1].split("\n\n")[0]
    assert "mem_mb=4500" in block and "runtime=60" in block, block


@pytest.mark.workflow
def test_seg_npy_layout_is_the_same_for_both_generations(cellpose_run, cellpose4_run):
    three = np.load(cellpose_run.folder / "segmentation_image_seg.npy", allow_pickle=True).item()
    four = np.load(cellpose4_run.folder / "segmentation_image_seg.npy", allow_pickle=True).item()
    assert SEG_KEYS <= set(three) & set(four)
    assert len(three["flows"]) == len(four["flows"])
    for a, b in zip(three["flows"], four["flows"], strict=False):
        assert np.ndim(a) == np.ndim(b) and np.asarray(a).dtype == np.asarray(b).dtype


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
    assert gui_helpers.cells(gui) == count - 2
    gui_helpers.save(gui)
    masks = segment.relabel_sequential(np.where(labels == 2, 1, np.where(labels == 3, 0, labels)))
    merged_pixels = int(((labels == 1) | (labels == 2)).sum())
    assert np.array_equal(np.load(seg_path, allow_pickle=True).item()["masks"], masks)

    second = run_workflow(workdir, "--configfile", config)
    _assert_only_downstream_reran(second)
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
    assert gui.loaded is True and gui_helpers.cells(gui) == count - 2
    assert np.array_equal(gui.cellpix[0], masks)


def _assert_only_downstream_reran(result):
    jobs = jobs_run(result)
    assert "segmentation" not in jobs and "projection" not in jobs, jobs
    for rule in (
        "segmentation_exports", "analysis_mask", "bleach_correction", "nb_maps", "tables", "figures",
        "settings", "aggregate",
    ):  # fmt: skip
        assert jobs.get(rule) == 1, (rule, jobs)


@pytest.mark.workflow
def test_cellpose_masks_corrected_in_the_cellpose4_gui(run_workflow, cellpose_run, overlay, cellpose_gui):
    """The same loop in cellpose 4's GUI, on the (cellpose 3) masks the test above left: the GUI
    loads them, a cell is deleted with Ctrl+click, Ctrl+S saves, and only the later steps rerun."""
    workdir, config, folder = cellpose_run.workdir, cellpose_run.config, cellpose_run.folder
    seg_path = folder / "segmentation_image_seg.npy"
    labels = tifffile.imread(folder / "segmentation_labels.tif")
    count = int(labels.max())
    before = pd.read_csv(folder / "average_values_in_roi.csv")
    victim = int(labels.max())  # the last cell: the others keep their IDs
    answer = gui_helpers.session([
        ("load_seg", str(seg_path)), ("view",),
        ("click", *gui_helpers.pixel_inside(labels, victim), "ctrl"), ("view",), ("save",),
    ], overlay)  # fmt: skip
    assert answer["cellpose"]["version"] == "4.2.1.1" and overlay.resolve() in Path(answer["cellpose"]["file"]).parents
    loaded, edited = answer["views"]
    # the masks as the test above left them (segmentation.json still counts the cells segmented)
    gui_helpers.assert_shows_results(loaded, folder, cellpose_run.stack.mean(axis=0), DIAMETER, labels=labels)
    masks = np.where(labels == victim, 0, labels)
    assert edited["cells"] == count - 1 and np.array_equal(edited["cellpix"], masks)
    assert np.array_equal(segment.masks_from_seg_dict(np.load(seg_path, allow_pickle=True).item()), masks)

    second = run_workflow(workdir, "--configfile", config)
    _assert_only_downstream_reran(second)
    after = pd.read_csv(folder / "average_values_in_roi.csv")
    assert list(after["Cell ID"]) == list(range(1, count)) and list(after["Pixels"]) == list(before["Pixels"])[:-1]
    assert np.array_equal(tifffile.imread(folder / "segmentation_labels.tif"), masks)
    used = json.loads((folder / "settings.json").read_text())["segmentation_used"]
    assert used["edited_after_segmentation"] is True and used["cells"] == count - 1
    # and cellpose 3's GUI opens the file as cellpose 4's GUI saved it
    gui = gui_helpers.load_seg(cellpose_gui, seg_path)
    assert gui.loaded is True and gui_helpers.cells(gui) == count - 1 and np.array_equal(gui.cellpix[0], masks)


@pytest.mark.workflow
def test_cellpose4_seg_npy_in_both_guis(run_workflow, cellpose4_run, overlay, cellpose_gui):
    """Cellpose 4's _seg.npy opens in cellpose 3's GUI and in cellpose 4's; a cell drawn in cellpose 4's
    GUI and saved reaches the tables after a rerun that runs only the later steps.

    Saved by the GUI's autosave (on by default): cellpose 4.2.1.1's GUI leaves File > Save greyed out
    after the first cell drawn into a file without cells (``add_set`` updates the menu before it
    counts the new cell), so Ctrl+S would do nothing here."""
    workdir, config, folder = cellpose4_run.workdir, cellpose4_run.config, cellpose4_run.folder
    seg_path = folder / "segmentation_image_seg.npy"
    projection = cellpose4_run.stack.mean(axis=0)
    gui = gui_helpers.load_seg(cellpose_gui, seg_path)
    gui_helpers.assert_shows_results(gui, folder, projection, 30.0)
    centre = (48, 48)
    answer = gui_helpers.session([
        ("load_seg", str(seg_path)), ("view",), ("autosave", True), ("draw_cell", centre, 9), ("view",),
    ], overlay)  # fmt: skip
    loaded, drawn = answer["views"]
    gui_helpers.assert_shows_results(loaded, folder, projection, 30.0)
    assert drawn["cells"] == 1 and drawn["cellpix"][centre] == 1
    pixels = int((drawn["cellpix"] == 1).sum())
    assert 200 < pixels < 330  # a disk of radius 9 (254 pixels), as the GUI filled the traced outline
    assert np.array_equal(segment.masks_from_seg_dict(np.load(seg_path, allow_pickle=True).item()), drawn["cellpix"])

    second = run_workflow(workdir, "--configfile", config)
    _assert_only_downstream_reran(second)
    table = pd.read_csv(folder / "average_values_in_roi.csv")
    assert list(table["Cell ID"]) == [1] and table["Pixels"].item() == pixels
    gui = gui_helpers.load_seg(cellpose_gui, seg_path)
    assert gui_helpers.cells(gui) == 1 and np.array_equal(gui.cellpix[0], drawn["cellpix"])


@pytest.mark.workflow
def test_wrong_or_missing_models_stop_the_run_at_start(run_workflow, models_dir, tiny_model, tmp_path):
    """Each stops before any job runs, says what to do, and downloads nothing."""
    (tmp_path / "stacks").mkdir()
    truth, rng = _field(8, shape=(48, 48), cells=2, touching_pairs=0)
    write_stack(tmp_path / "stacks" / "cells.tif", simulate.cell_field_stack(truth, 10, rng))
    cases = [
        # a missing built-in model of each generation: the command that fetches it, where it lands
        ({"model": "cpsam"}, ["built-in cellpose 4", str(models_dir / "cpsam"), "PYTHONPATH=",
                              ".cellpose4 ", "-m brightflow.cellpose_adapter fetch cpsam"]),
        ({"model": "cyto3"}, ["built-in cellpose 3", str(models_dir / "cyto3"),
                              "-m brightflow.cellpose_adapter fetch cyto3"]),
        # a cellpose 3 file under cellpose 4's name (what the issue saw fail inside cellpose 3)
        ({"model": "cpsam_v2"}, ["cellpose 4 model name", "holds a cellpose 3 network"]),
        ({"model": tiny_model, "precision": "bfloat16"}, ["cellpose 3 model, which runs in float32"]),
        ({"model": str(tmp_path / "stacks" / "cells.tif")}, ["cells.tif: not a cellpose model"]),
    ]  # fmt: skip
    (models_dir / "cpsam_v2").write_bytes(Path(tiny_model).read_bytes())
    try:
        for settings, phrases in cases:
            result = run_workflow(tmp_path, "--configfile", _cellpose_config(tmp_path, **settings), check=False)
            output = result.stdout + result.stderr
            assert result.returncode != 0, settings
            assert jobs_run(result) == {} and "Traceback" not in output, output[-3000:]
            for phrase in phrases:
                assert phrase in output, (phrase, output[-3000:])
    finally:
        (models_dir / "cpsam_v2").unlink()
    assert list(models_dir.iterdir()) == []  # nothing was downloaded
    assert not (tmp_path / "out").exists()


@pytest.mark.workflow
def test_segmentation_declares_a_gpu_only_when_it_uses_one(run_workflow, tmp_path, tiny_model, random_cpsam):
    (tmp_path / "stacks").mkdir()
    write_stack(tmp_path / "stacks" / "cells.tif", np.ones((5, 16, 16), np.uint16))
    expected = {"true": 1, "false": 0, "auto": int(cellpose_adapter.cuda_available())}
    for model, memory in ((tiny_model, 3500), (random_cpsam, 4500)):
        for setting, gpus in expected.items():
            config = _cellpose_config(tmp_path, model, gpu={"true": True, "false": False}.get(setting, setting))
            result = run_workflow(tmp_path, "--configfile", config, "--dry-run")
            block = (result.stdout + result.stderr).split("rule segmentation:")[1].split("\n\n")[0]
            assert f"gpu={gpus}" in block and f"mem_mb={memory}" in block, (setting, block)


@pytest.mark.workflow
@pytest.mark.skipif(
    not os.environ.get("BRIGHTFLOW_CPSAM_WEIGHTS"),
    reason="set BRIGHTFLOW_CPSAM_WEIGHTS to the path of cellpose 4's cpsam weights to run this test with real weights",
)
def test_real_cpsam_weights_segment_simulated_cells(run_workflow, overlay, tmp_path):
    weights = os.environ["BRIGHTFLOW_CPSAM_WEIGHTS"]
    run = _run(run_workflow, tmp_path, weights, shape=(192, 192), seed=11, diameter=0)
    labels = tifffile.imread(run.folder / "segmentation_labels.tif")
    scores = segment.match_scores(run.truth, labels)
    assert scores["recall"] >= 0.8 and scores["mean_iou"] >= 0.7, scores
    assert json.loads((run.folder / "segmentation.json").read_text())["generation"] == 4
