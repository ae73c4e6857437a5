"""The workflow run as a user runs it: the snakemake command line in a fresh folder."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers import CELL_COLUMNS, REPO, SHARED_DATA, jobs_run, write_config, write_stack

from brightflow import simulate
from brightflow.nb import MAP_NAMES

pytestmark = pytest.mark.workflow

CONTRACT = (
    Path(next((SHARED_DATA.parent / "seeds").glob("000_*.txt"), "/nonexistent"))
    if SHARED_DATA.parent.exists()
    else None
)

# Every per-experiment file of the replaced app's output contract (../shared/seeds/000_*.txt).
CONTRACT_FILES = [f"{name}.{ext}" for name in MAP_NAMES for ext in ("npy", "tif", "png")] + [
    "cellmask.png",
    "eroded_mask.png",
    "segmentation_image.tif",
    "segmentation_image_seg.npy",
    "Bleach_correction.png",
    "brightness_x_intensity.png",
    "brightness_intensity_values.csv",
    "average_values_in_roi.csv",
]


def test_contract_list_matches_the_seed_document():
    if CONTRACT is None or not CONTRACT.exists():
        pytest.skip("../shared/seeds is not beside this checkout")
    text = CONTRACT.read_text()
    listed = {line.strip()[2:] for line in text.splitlines() if line.strip().startswith("- ") and "." in line}
    listed = {name for name in listed if " " not in name}
    assert listed - {"Folder_average_values_in_roi.csv"} == set(CONTRACT_FILES)


@pytest.fixture(scope="module")
def demo_run(run_workflow, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    result = run_workflow(workdir, config={"input_dir": "demo"})
    return workdir, result


#: SHA-256 of every .npy and .csv the demo writes (tests/data/demo_outputs.sha256), recorded before
#: the I/O layer moved into the package (2026-11-30): the refactoring changed no number. Updated once
#: since, for an intended change: the per-cell CSVs' Warnings column and sample_quality.npy (the maps'
#: records unchanged); and again on 2026-12-02 (issue 21): the demo is 128 x 128 x 400 frames, and the
#: variance after a smoothing correction is divided by its residual degrees of freedom. A cellpose
#: _seg.npy holds the absolute path of its image, which differs from folder to folder: its record
#: ("<file>#cells") is of its cells (masks, outlines, diameters, channels).
DEMO_CHECKSUMS = REPO / "tests" / "data" / "demo_outputs.sha256"


def _digest(path):
    if path.name.endswith("_seg.npy"):
        seg = np.load(path, allow_pickle=True).item()
        digest = hashlib.sha256()
        for key in ("masks", "outlines"):
            digest.update(np.ascontiguousarray(seg[key]).tobytes())
        digest.update(repr((seg["est_diam"], seg["diameter"], seg["chan_choose"])).encode())
        return digest.hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _outputs_differing_from_the_record(results):
    """The demo's .npy and .csv files whose bytes differ from tests/data/demo_outputs.sha256 (and the
    check that it wrote exactly the files recorded)."""
    recorded = {name.split("#")[0]: digest for digest, name in map(str.split, DEMO_CHECKSUMS.read_text().splitlines())}
    written = sorted(
        str(path.relative_to(results))
        for path in results.rglob("*")
        if path.suffix in (".npy", ".csv") and "demo_input" not in path.parts
    )
    assert written == sorted(recorded)
    return [name for name in written if _digest(results / name) != recorded[name]]


def test_demo_numbers_are_byte_for_byte_those_recorded(demo_run):
    """Every .npy and .csv of the demo is byte-for-byte what the workflow wrote before its I/O and
    streaming layer moved into brightflow.io and brightflow.steps (a change of any number, column or
    file fails here; update the record only for a change meant to alter results)."""
    workdir, _ = demo_run
    changed = _outputs_differing_from_the_record(workdir / "results")
    assert not changed, f"outputs differ from the recorded ones: {changed}"


def test_compiled_loops_write_the_same_bytes(run_workflow, tmp_path, monkeypatch):
    """The compiled loops (brightflow.compiled: the boxcar correction, its automatic parameter, the
    bleach step's row sums and sample counts), which the workflow uses only on large recordings, forced
    on the demo: every number is byte-for-byte the numpy path's."""
    monkeypatch.setenv("BRIGHTFLOW_COMPILED_LOOPS", "always")
    run_workflow(tmp_path, config={"input_dir": "demo"})
    changed = _outputs_differing_from_the_record(tmp_path / "results")
    assert not changed, f"outputs differ from the recorded ones: {changed}"


def test_demo_writes_every_contract_file(demo_run):
    workdir, _ = demo_run
    results = workdir / "results"
    for experiment in simulate.DEMO_EXPERIMENTS:
        missing = [name for name in CONTRACT_FILES + ["settings.json"] if not (results / experiment / name).is_file()]
        assert not missing, f"{experiment}: missing {missing}"
    assert (results / "Folder_average_values_in_roi.csv").is_file()


def test_demo_brightness_matches_ground_truth(demo_run):
    """The demo's ground_truth.csv is keyed by the tables' Cell ID (each segmented cell and the true cell it
    overlaps most). Every demo cell's ratio-of-means brightness (the number to quote) is within 1.5% of its
    truth (standard error at most 0.4%: about 1,300 pixels over 400 frames), its pixel mean within 5%; the
    experiments of the folder are corrected alike (issue 21: no chance decision between siblings)."""
    workdir, _ = demo_run
    results = workdir / "results"
    truth = pd.read_csv(results / "demo_input" / "ground_truth.csv")
    assert list(truth.columns) == ["Experiment", "Cell ID", "True brightness", "True number", "Truth cell", "Overlap"]
    folder = pd.read_csv(results / "Folder_average_values_in_roi.csv")
    joined = folder.merge(truth, on=["Experiment", "Cell ID"], validate="one_to_one")
    assert len(joined) == len(folder) == sum(len(cells) for cells in simulate.DEMO_EXPERIMENTS.values())
    for experiment, cells in simulate.DEMO_EXPERIMENTS.items():
        table = pd.read_csv(results / experiment / "average_values_in_roi.csv")
        assert list(table.columns[: len(CELL_COLUMNS)]) == CELL_COLUMNS  # the replaced app's, first
        rows = joined[joined.Experiment == experiment]
        assert sorted(rows["Truth cell"]) == list(range(1, len(cells) + 1)), "one segmented cell per true cell"
        assert (rows["Overlap"] > 0.95).all(), rows
    for _, row in joined.iterrows():
        assert row["Brightness"] == pytest.approx(row["True brightness"], rel=0.05), row
        assert row["Brightness (ratio of means)"] == pytest.approx(row["True brightness"], rel=0.015), row
        assert row["Pixels"] > 1000
    models = [
        json.loads((results / experiment / "bleach_correction.json").read_text())
        for experiment in simulate.DEMO_EXPERIMENTS
    ]
    assert {(model["method"], model["parameter"]) for model in models} == {("boxcar", 399)}


def test_demo_maps_files_agree_and_are_readable(demo_run):
    workdir, _ = demo_run
    folder = workdir / "results" / "demo_mixed"
    stack = tifffile.imread(workdir / "results" / "demo_input" / "demo_mixed.tif").astype(float)
    for name in MAP_NAMES:
        array = np.load(folder / f"{name}.npy")
        assert array.dtype == np.float64 and array.shape == stack.shape[1:]
        tif = tifffile.imread(folder / f"{name}.tif")
        assert tif.dtype == np.float32
        assert np.allclose(tif, array.astype(np.float32), equal_nan=True)
    # the demo is not bleached: the automatic parameter finds no trend beyond the noise and keeps the
    # least severe boxcar, a window over the whole recording, which is no correction: the maps are the
    # plain moments of the recorded frames
    model = json.loads((folder / "bleach_correction.json").read_text())
    frames = stack.shape[0]
    assert (model["method"], model["parameter"], model["replaced"]) == ("boxcar", frames - 1, None), model["auto"]
    assert model["degrees_of_freedom"]["variance_scale"] == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(np.load(folder / "intensity.npy"), stack.mean(axis=0))
    assert np.allclose(np.load(folder / "variance.npy"), stack.var(axis=0, ddof=1))
    projection = tifffile.imread(folder / "segmentation_image.tif")
    assert np.allclose(projection, stack.mean(axis=0), rtol=1e-6)


def test_demo_tables_and_settings(demo_run):
    workdir, _ = demo_run
    results = workdir / "results"
    pixels = pd.read_csv(results / "demo_mixed" / "brightness_intensity_values.csv")
    assert list(pixels.columns) == ["Cell ID", "y", "x", "Intensity", "Apparent brightness", "Brightness"]
    labels = tifffile.imread(results / "demo_mixed" / "analysis_labels.tif")
    assert len(pixels) == np.count_nonzero(labels)
    brightness = np.load(results / "demo_mixed" / "brightness.npy")
    row = pixels.iloc[17]
    assert row["Brightness"] == pytest.approx(brightness[int(row.y), int(row.x)])
    assert labels[int(row.y), int(row.x)] == row["Cell ID"]

    folder = pd.read_csv(results / "Folder_average_values_in_roi.csv")
    assert list(folder.columns[: len(CELL_COLUMNS) + 1]) == ["Experiment"] + CELL_COLUMNS
    assert folder["Experiment"].tolist() == sorted(folder["Experiment"].tolist())
    assert len(folder) == sum(len(cells) for cells in simulate.DEMO_EXPERIMENTS.values())
    mixed = folder[folder.Experiment == "demo_mixed"].drop(columns="Experiment").reset_index(drop=True)
    pd.testing.assert_frame_equal(mixed, pd.read_csv(results / "demo_mixed" / "average_values_in_roi.csv"))

    settings = json.loads((results / "demo_mixed" / "settings.json").read_text())
    stack_path = results / "demo_input" / "demo_mixed.tif"
    import hashlib

    assert settings["input"]["sha256"] == hashlib.sha256(stack_path.read_bytes()).hexdigest()
    assert settings["input"]["size_bytes"] == stack_path.stat().st_size
    assert settings["parameters"]["nb"]["variance_ddof"] == 1
    assert settings["parameters"]["segmentation"]["method"] == "threshold"
    assert settings["versions"]["numpy"] == np.__version__ and settings["versions"]["brightflow"]

    seg = np.load(results / "demo_mixed" / "segmentation_image_seg.npy", allow_pickle=True).item()
    assert {"masks", "outlines", "filename"} <= set(seg)
    # the image relative to the output folder (the GUI also finds it beside the _seg.npy)
    assert seg["filename"] == "demo_mixed/segmentation_image.tif" and (results / seg["filename"]).is_file()


def test_second_run_has_nothing_to_do(run_workflow, demo_run):
    workdir, _ = demo_run
    result = run_workflow(workdir, "--dry-run", config={"input_dir": "demo"})
    assert "Nothing to be done" in result.stdout + result.stderr


# --- a folder of the user's stacks ------------------------------------------------------------------


def _small_experiment(seed, cells=((2.0, 4.0), (1.0, 8.0))):
    return simulate.demo_experiment(list(cells), seed=seed, shape=(64, 64), frames=40)


@pytest.fixture
def stacks_folder(tmp_path):
    folder = tmp_path / "stacks"
    folder.mkdir()
    for index, name in enumerate(["cells_a", "cells_b"]):
        write_stack(folder / f"{name}.tif", _small_experiment(index)[0])
    return folder


def test_parameter_change_reruns_only_what_depends_on_it(run_workflow, tmp_path, stacks_folder):
    config = {"input_dir": stacks_folder}
    run_workflow(tmp_path, config=config)
    seg_file = tmp_path / "results" / "cells_a" / "segmentation_image_seg.npy"
    seg_time = seg_file.stat().st_mtime_ns
    linear = write_config(tmp_path / "linear.yaml", bleach_correction={"method": "linear"})
    result = run_workflow(tmp_path, "--configfile", linear, config=config)
    ran = jobs_run(result)
    assert ran.get("bleach_correction") == 2 and ran.get("nb_maps") == 2 and ran.get("aggregate") == 1
    assert ran.get("tables") == 2 and ran.get("figures") == 2
    assert "projection" not in ran and "segmentation" not in ran and "analysis_mask" not in ran
    assert seg_file.stat().st_mtime_ns == seg_time
    model = json.loads((tmp_path / "results" / "cells_a" / "bleach_correction.json").read_text())
    assert model["method"] == "linear"


def test_adding_a_stack_runs_only_its_jobs_and_the_aggregate(run_workflow, tmp_path, stacks_folder):
    config = {"input_dir": stacks_folder}
    run_workflow(tmp_path, config=config)
    write_stack(stacks_folder / "cells_c.TIFF", _small_experiment(9)[0])
    result = run_workflow(tmp_path, config=config)
    ran = jobs_run(result)
    per_experiment = {rule: count for rule, count in ran.items() if rule not in ("aggregate", "all")}
    assert set(per_experiment.values()) == {1}, ran
    assert ran.get("aggregate") == 1 and ran.get("projection") == 1
    folder = pd.read_csv(tmp_path / "results" / "Folder_average_values_in_roi.csv")
    assert sorted(folder.Experiment.unique()) == ["cells_a", "cells_b", "cells_c"]


def test_compressed_stack_gives_the_maps_of_the_uncompressed_one(run_workflow, tmp_path):
    """A zlib-compressed stack with the default smoothing correction (tiles of rows read from a
    decoded copy in the job's tmpdir) gives exactly the maps of the same stack uncompressed,
    asks no more memory, and leaves nothing in the tmpdir."""
    folder = tmp_path / "stacks"
    folder.mkdir()
    stack = np.tile(_small_experiment(3)[0], (1, 3, 3))  # 40 x 192 x 192: 2.8 MB decoded
    write_stack(folder / "plain.tif", stack)
    tifffile.imwrite(folder / "packed.tif", stack, compression="zlib", metadata={"axes": "TYX"})
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    config = {"input_dir": folder}
    # a set window (auto would keep a window over the whole recording in this unbleached simulation)
    boxcar = write_config(tmp_path / "boxcar.yaml", bleach_correction={"method": "boxcar", "parameter": 9})
    resources = ["--configfile", boxcar, "--default-resources", f"tmpdir={scratch}"]
    dry = run_workflow(tmp_path, "--dry-run", *resources, config=config)
    requests = re.findall(
        r"rule bleach_correction:.*?wildcards: unit=(\w+).*?mem_mb=(\d+)", dry.stdout + dry.stderr, re.DOTALL
    )
    assert sorted(requests) == [("packed", "500"), ("plain", "500")]
    run_workflow(tmp_path, *resources, config=config)
    results = tmp_path / "results"
    model = json.loads((results / "packed" / "bleach_correction.json").read_text())
    assert model["method"] == "boxcar" and model["parameter"] == 9
    for name in ("intensity", "variance", "brightness", "number"):
        np.testing.assert_array_equal(
            np.load(results / "packed" / f"{name}.npy"), np.load(results / "plain" / f"{name}.npy")
        )
    assert (results / "packed" / "bleach_corrected_trace.json").read_bytes() == (
        results / "plain" / "bleach_corrected_trace.json"
    ).read_bytes()
    # the fit reads chunks of frames; the maps read tiles of rows, from the copy decoded once
    log = (results / "logs" / "packed" / "nb_maps.log").read_text()
    assert f"{folder / 'packed.tif'} is compressed: decoded once into a temporary file (3 MB, in {scratch})" in log
    assert not list(scratch.rglob("brightflow-decoded-*"))


def test_a_layout_read_whole_asks_memory_for_the_whole_stack(run_workflow, tmp_path):
    """Time not the first axis (CTYX): stackio.Stack decodes such a file whole, and the stack
    rules ask 500 MB plus its size; the same pixels as TCYX are streamed and ask 500 MB."""
    folder = tmp_path / "stacks"
    folder.mkdir()
    pixels = np.random.default_rng(0).poisson(5, size=(2, 30, 160, 160)).astype(np.uint16)  # 2.9 MB
    tifffile.imwrite(folder / "channels_first.tif", pixels, metadata={"axes": "CTYX"})
    tifffile.imwrite(folder / "time_first.tif", pixels.transpose(1, 0, 2, 3), metadata={"axes": "TCYX"})
    dry = run_workflow(tmp_path, "--dry-run", config={"input_dir": folder})
    requests = set(
        re.findall(r"rule projection:.*?wildcards: experiment=(\w+).*?mem_mb=(\d+)", dry.stdout + dry.stderr, re.DOTALL)
    )
    assert requests == {("channels_first", "502"), ("time_first", "500")}


def test_bad_inputs_stop_only_their_experiment(run_workflow, tmp_path, stacks_folder):
    tifffile.imwrite(stacks_folder / "flat.tif", np.ones((32, 32), dtype=np.uint16))
    (stacks_folder / "broken.tif").write_bytes(b"this is not a tiff file at all")
    result = run_workflow(tmp_path, "--keep-going", config={"input_dir": stacks_folder}, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "flat.tif: is a single 2D image" in output and "N&B needs a stack of frames" in output
    assert "broken.tif: cannot be read as a TIFF" in output
    for good in ("cells_a", "cells_b"):
        for name in CONTRACT_FILES:
            assert (tmp_path / "results" / good / name).is_file(), (good, name)
    log = (tmp_path / "results" / "logs" / "flat" / "projection.log").read_text()
    assert "single 2D image" in log


def test_duplicate_experiment_names_are_a_start_up_error(run_workflow, tmp_path, stacks_folder):
    shutil.copy(stacks_folder / "cells_a.tif", stacks_folder / "cells_a.TIFF")
    result = run_workflow(tmp_path, "--dry-run", config={"input_dir": stacks_folder}, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "same experiment name" in output and "cells_a.TIFF" in output


@pytest.mark.parametrize(
    "override, message",
    [
        ({"segmentaton": {"method": "threshold"}}, "segmentaton"),
        ({"nb": {"variance_ddof": "one"}}, "variance_ddof"),
        ({"bleach_correction": {"method": "magic"}}, "magic"),
    ],
)
def test_config_errors_name_the_key(run_workflow, tmp_path, override, message):
    config_file = write_config(tmp_path / "bad.yaml", **override)
    result = run_workflow(tmp_path, "--dry-run", "--configfile", config_file, check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


def test_sample_sheet_with_existing_masks(run_workflow, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    stack, truth = _small_experiment(3)
    write_stack(data / "rec1.tif", stack)
    tifffile.imwrite(data / "rec1_mask.tif", truth)
    (tmp_path / "samples.tsv").write_text("experiment\tpath\tmask\nfirst\tdata/rec1.tif\tdata/rec1_mask.tif\n")
    config_file = write_config(
        tmp_path / "c.yaml", samples=str(tmp_path / "samples.tsv"), segmentation={"method": "existing"}
    )
    run_workflow(tmp_path, "--configfile", config_file)
    table = pd.read_csv(tmp_path / "results" / "first" / "average_values_in_roi.csv")
    assert table["Cell ID"].tolist() == [1, 2]
    assert table["Pixels"].tolist() == [np.count_nonzero(truth == 1), np.count_nonzero(truth == 2)]
    assert table["Brightness"].tolist() == pytest.approx([2.0, 1.0], rel=0.08)


def test_existing_method_without_mask_column_is_a_start_up_error(run_workflow, tmp_path, stacks_folder):
    config_file = write_config(tmp_path / "c.yaml", input_dir=str(stacks_folder), segmentation={"method": "existing"})
    result = run_workflow(tmp_path, "--dry-run", "--configfile", config_file, check=False)
    assert result.returncode != 0 and "have no mask" in result.stdout + result.stderr
