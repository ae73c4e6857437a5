"""A corpus of bad and doubtful inputs (docs/quality.md, "Bad inputs"): each either stops its own experiment
with a message that names the file, the cause and what to do, while the other experiments finish and
no partial output is left, or stops the run at start naming the setting or the sample-sheet row, or
is analysed with a Warnings flag beside the numbers it makes doubtful."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers import write_stack

from brightflow import simulate

pytestmark = pytest.mark.workflow


def _cells(seed=1, frames=60, shape=(48, 48), brightness=2.0):
    return simulate.demo_experiment([(brightness, 6.0)], seed=seed, shape=shape, frames=frames)


def _imagej(path, stack):
    tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "TYX"})


# Files that fail their own experiment at run time: name -> (how to write it, the rule that fails, what
# the message says besides the file's path)
def _write_failing(folder):
    stack, _ = _cells()
    rng = np.random.default_rng(3)
    tifffile.imwrite(folder / "flat.tif", stack[0])
    (folder / "text.tif").write_text("this is a text file, not a TIFF")
    (folder / "empty.tif").write_bytes(b"")
    _imagej(folder / "whole.tif", stack)
    data = (folder / "whole.tif").read_bytes()
    (folder / "truncated.tif").write_bytes(data[: len(data) // 2])
    (folder / "whole.tif").unlink()
    tifffile.imwrite(
        folder / "zstack.tif", np.stack([stack[:30], stack[30:]], 1), imagej=True, metadata={"axes": "TZYX"}
    )
    tifffile.imwrite(folder / "rgb.tif", np.stack([stack] * 3, -1).astype(np.uint8), photometric="rgb")
    _imagej(folder / "two_frames.tif", stack[:2])
    tifffile.imwrite(folder / "complex.tif", stack.astype(np.complex64), photometric="minisblack")
    with tifffile.TiffWriter(folder / "mixed_shapes.tif") as tif:
        for index in range(6):
            tif.write(stack[index][: 48 if index % 2 else 24], photometric="minisblack", contiguous=False)
    _imagej(folder / "all_nan.tif", np.full(stack.shape, np.nan, np.float32))
    _imagej(folder / "negative.tif", (stack.astype(np.int32) - 20).astype(np.int16))  # cells below 0
    # an OME file whose metadata says its 60 planes are z (a z-stack): not read as time
    tifffile.imwrite(folder / "ome_zstack.tif", stack, ome=True, metadata={"axes": "ZYX"})
    # lossy compression destroys the shot noise N&B measures
    tifffile.imwrite(
        folder / "jpeg.tif", np.clip(stack, 0, 255).astype(np.uint8), photometric="minisblack", compression="jpeg"
    )
    # frames one pixel wide (what tifffile stores as one page of 40 x 256 with one sample per pixel)
    _imagej(folder / "thin.tif", rng.poisson(10, (40, 256, 1)).astype(np.uint16))
    with_gap = stack.astype(np.float32)
    with_gap[12] = np.nan  # a frame lost in the export
    _imagej(folder / "nan_frame.tif", with_gap)
    # entries named like stacks that are not read: reported at start, not skipped silently
    (folder / "dangling.tif").symlink_to(folder / "gone.tif")
    (folder / "folder.tif").mkdir()
    del rng


FAILING = {
    "flat": ("projection", "is a single 2D image"),
    "text": ("projection", "cannot be read as a TIFF"),
    "empty": ("projection", "cannot be read as a TIFF"),
    "truncated": ("projection", "truncated"),
    "zstack": ("projection", "Z axis of 2 planes"),
    "rgb": ("projection", "has no time axis brightflow can trust: set input.axes"),
    "two_frames": ("projection", "has only 2 frame(s)"),
    "complex": ("projection", "is not a real number type"),
    "mixed_shapes": ("projection", "its pages do not all have the same shape"),
    "all_nan": ("bleach_correction", "every pixel has NaN or Inf samples"),
    "negative": ("bleach_correction", "at or below 0: detrending, and N&B itself, need positive photon counts"),
    "ome_zstack": ("projection", "is a z-stack: its metadata names the axes 'ZYX', 60 planes in Z"),
    "jpeg": ("projection", "its pixels are stored with JPEG compression, which is lossy here"),
    "thin": ("projection", "holds frames of 256 x 1 pixels (one pixel wide"),
    "nan_frame": ("projection", "frame(s) 13 (counting from 1, of 60) are NaN or Inf in every pixel"),
}

# Files that are analysed, with a warning: name -> (how to write it, the Warnings code expected)


def _write_doubtful(folder):
    stack, labels = _cells(seed=2, brightness=4.0)
    saturated = stack.astype(np.float64) * 30
    _imagej(folder / "saturated.tif", np.clip(saturated, 0, 255).astype(np.uint8))
    with_nan = stack.astype(np.float32)
    with_nan[5, labels > 0] = np.nan  # one frame lost in the cell
    _imagej(folder / "nan_samples.tif", with_nan)
    with_inf = stack.astype(np.float32)
    with_inf[7, 16, 16] = np.inf
    _imagej(folder / "inf_sample.tif", with_inf)
    noise = np.random.default_rng(4).poisson(5.0, size=(60, 48, 48)).astype(np.uint16)
    _imagej(folder / "pure_noise.tif", noise)
    _imagej(folder / "blank.tif", np.zeros((60, 32, 32), np.uint16))
    _imagej(folder / "negative_samples.tif", (stack.astype(np.int32) - 6).astype(np.int16))  # cells above 0
    short, _ = _cells(seed=5, frames=20, brightness=6.0)
    _imagej(folder / "few_frames.tif", short)
    # counts far above photon counts (an analog detector not described), bleached by 40%
    bleached = (stack * 2e7 + 1e9) * np.linspace(1, 0.6, len(stack))[:, None, None]
    tifffile.imwrite(folder / "huge_counts.tif", bleached.astype(np.uint32), photometric="minisblack")


DOUBTFUL = {
    "saturated": "saturated (",
    "nan_samples": "non-finite samples (",
    "inf_sample": "non-finite samples (1)",
    "pure_noise": "low signal",
    "blank": "no cells",
    "few_frames": "few frames (20)",
    "negative_samples": "negative values (",
    "huge_counts": "not photon counts (B ",
}


def _corpus(run_workflow, workdir, write):
    folder = workdir / "stacks"
    folder.mkdir()
    for index in range(2):
        write_stack(folder / f"good_{index}.tif", _cells(seed=10 + index)[0])
    write(folder)
    result = run_workflow(workdir, "--keep-going", config={"input_dir": folder}, check=False, timeout=1200)
    return workdir, folder, result, result.stdout + result.stderr


@pytest.fixture(scope="module")
def failing_run(run_workflow, tmp_path_factory):
    """One run over a folder of good stacks and every failing kind, with --keep-going."""
    return _corpus(run_workflow, tmp_path_factory.mktemp("failing"), _write_failing)


@pytest.fixture(scope="module")
def doubtful_run(run_workflow, tmp_path_factory):
    """One run over a folder of good stacks and every doubtful kind: it completes, with warnings."""
    return _corpus(run_workflow, tmp_path_factory.mktemp("doubtful"), _write_doubtful)


@pytest.mark.parametrize("name", sorted(FAILING))
def test_a_bad_file_fails_only_its_experiment_with_a_clear_message(failing_run, name):
    workdir, folder, result, output = failing_run
    assert result.returncode != 0
    rule, cause = FAILING[name]
    summary = output[output.index("did not finish:") :]
    line = next(line for line in summary.splitlines() if line.startswith(f"  - {name}: "))
    # the file, the cause, and where to read more
    assert str(folder / f"{name}.tif") in line and cause in line, line
    assert f"(log: results/logs/{name}/{rule}.log)" in line, line
    assert cause in (workdir / "results" / "logs" / name / f"{rule}.log").read_text()
    # nothing of the failed job is left (snakemake removes a failed job's outputs)
    failed_outputs = {
        "projection": ["segmentation_image.tif"],
        "bleach_correction": ["bleach_correction.json", "sample_quality.npy", "Bleach_correction.png"],
    }
    for output_name in failed_outputs[rule]:
        assert not (workdir / "results" / name / output_name).exists(), output_name


def test_the_other_experiments_finish(failing_run):
    workdir, _, _, output = failing_run
    for name in ("good_0", "good_1"):
        assert (workdir / "results" / name / "average_values_in_roi.csv").is_file(), output[-3000:]
        assert (workdir / "results" / name / "brightness_explorer.html").is_file()
    assert f"{len(FAILING)} of {len(FAILING) + 2} experiment(s) did not finish" in output


def test_entries_named_like_stacks_that_are_not_read_are_reported(failing_run):
    _, folder, _, output = failing_run
    assert (
        f"brightflow: {folder / 'dangling.tif'}: skipped: a link to {folder / 'gone.tif'}, which does not exist"
        in output
    )
    assert f"brightflow: {folder / 'folder.tif'}: skipped: a folder named like a .tif file" in output


@pytest.mark.parametrize("name", sorted(DOUBTFUL))
def test_doubtful_data_are_flagged_beside_their_numbers(doubtful_run, name):
    workdir, _, result, output = doubtful_run
    assert result.returncode == 0, output[-3000:]
    table = pd.read_csv(workdir / "results" / name / "average_values_in_roi.csv", keep_default_na=False)
    folder = pd.read_csv(workdir / "results" / "Folder_average_values_in_roi.csv", keep_default_na=False)
    rows = folder[folder["Experiment"] == name]
    expected = DOUBTFUL[name]
    if expected == "no cells":
        # no row in its own table, one in the folder's: its name, empty values, "no cells"
        assert len(table) == 0 and "Warnings" in table.columns
        assert rows["Warnings"].tolist() == ["no cells"] and rows["Cell ID"].tolist() == [""]
        return
    assert len(table) >= 1
    assert all(expected in text for text in table["Warnings"]), table["Warnings"].tolist()
    assert rows["Warnings"].tolist() == table["Warnings"].tolist()
    for good in ("good_0", "good_1"):  # good data: no warning
        clean = pd.read_csv(workdir / "results" / good / "average_values_in_roi.csv", keep_default_na=False)
        assert len(clean) and (clean["Warnings"] == "").all()
    # and the log of the per-cell tables says so too
    assert expected.split(" (")[0] in (workdir / "results" / "logs" / name / "tables.log").read_text()


def test_nan_samples_leave_their_pixels_out_not_the_cell(doubtful_run):
    """A NaN frame in a cell drops that cell's pixels from the values but not from the mask: the
    segmentation sees the mean of the finite samples (the cell keeps its size)."""
    workdir, _, _, _ = doubtful_run
    results = workdir / "results"
    table = pd.read_csv(results / "nan_samples" / "average_values_in_roi.csv", keep_default_na=False)
    reference = pd.read_csv(results / "saturated" / "average_values_in_roi.csv", keep_default_na=False)
    assert table["Pixels"].iloc[0] == pytest.approx(reference["Pixels"].iloc[0], rel=0.1)
    assert table["Pixels analysed"].iloc[0] == 0  # every pixel of the cell has a NaN sample
    inf = pd.read_csv(results / "inf_sample" / "average_values_in_roi.csv", keep_default_na=False)
    assert inf["Pixels analysed"].iloc[0] == inf["Pixels"].iloc[0] - 1 and np.isfinite(inf["Intensity"].iloc[0])


def test_the_log_summarises_the_flags_and_the_figure_marks_them(doubtful_run):
    workdir, _, _, output = doubtful_run
    log = (workdir / "results" / "logs" / "aggregate.log").read_text()
    for code in ("saturated", "non-finite samples", "low signal", "few frames", "negative values"):
        assert f"WARNING {code}: " in log and f"WARNING {code}: " in output, code
    assert "WARNING no cells: 1 experiment(s): blank (1)" in log
    assert (workdir / "results" / "Folder_brightness_summary.png").stat().st_size > 10_000


# --- stopped at start, naming the setting or the row ----------------------------------------------------


@pytest.fixture
def one_stack(tmp_path):
    folder = tmp_path / "stacks"
    folder.mkdir()
    write_stack(folder / "cells.tif", _cells()[0])
    return folder


@pytest.mark.parametrize(
    "encode, message",
    [
        (lambda text: text.encode("utf-16"), "the sample sheet is saved as UTF-16 (Excel's 'Unicode Text')"),
        (
            lambda text: text.replace("cells", "cellules_é").encode("latin-1"),
            "the sample sheet is not UTF-8 text (line 2 holds byte 0xe9",
        ),
        (lambda text: b"PK\x03\x04" + b"\0" * 60, "the sample sheet is an Excel workbook (.xlsx), not text"),
    ],
    ids=["utf16", "latin1", "xlsx"],
)
def test_a_sheet_not_saved_as_utf8_text_says_how_to_save_it(run_workflow, tmp_path, one_stack, encode, message):
    path = tmp_path / "sheet.tsv"
    path.write_bytes(encode("experiment\tpath\ncells\tstacks/cells.tif\n"))
    result = run_workflow(tmp_path, "--dry-run", config={"input_dir": one_stack, "samples": path}, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and f"{path}: {message}" in output and "Save it as UTF-8 text" in output, output[
        -2000:
    ]
    assert "Traceback" not in output


@pytest.mark.parametrize(
    "name, message",
    [
        ("a{x}.tif", "holds a brace ({ or }), which Snakemake reads as a wildcard"),
        ("b" + "a" * 20 + ".tif", "ends with 20 repeats of 'a', which Snakemake takes for a rule feeding itself"),
        ("ab" * 20 + ".tif", "ends with 20 repeats of 'ab'"),
        (
            "Folder_brightness_summary.png.tif",
            "is reserved for brightflow's own folder or file of that name in output_dir",
        ),
        ("logs.tif", "is reserved for brightflow's own folder or file"),
    ],
)
def test_names_snakemake_cannot_take_are_refused_at_start_naming_the_file(
    run_workflow, tmp_path, one_stack, name, message
):
    write_stack(one_stack / name, _cells()[0])
    result = run_workflow(tmp_path, "--dry-run", config={"input_dir": one_stack}, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and str(one_stack / name) in output and message in output, output[-2000:]
    assert "WildcardError" not in output and "ChildIOException" not in output and "Traceback" not in output


def test_an_output_folder_with_braces_is_refused_at_start(run_workflow, tmp_path, one_stack):
    result = run_workflow(tmp_path, "--dry-run", config={"input_dir": one_stack, "output_dir": "out{x}"}, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "output_dir: 'out{x}' holds a brace" in output and "WildcardError" not in output


@pytest.mark.parametrize(
    "sheet, message",
    [
        ("experiment\tpath\n\tstacks/cells.tif\n", "row 2, column 'experiment': is empty"),
        (
            "experiment\tpath\na/b\tstacks/cells.tif\n",
            "row 2, column 'experiment': the name 'a/b' holds a path separator",
        ),
        ("experiment\tpath\n..\tstacks/cells.tif\n", "row 2, column 'experiment': the name is '..'"),
        ("experiment\tpath\n-x\tstacks/cells.tif\n", "starts with '-'"),
        ("experiment\tfile\ncells\tstacks/cells.tif\n", "(the header): the sample sheet lacks column(s) ['path']"),
        ("experiment\tpath\ncells\tstacks/cells.tif\textra\n", "row 2: 3 cells but the header names 2 columns"),
        ("experiment\tpath\ta\tb\nx\tstacks/cells.tif\n", ""),  # unknown columns are ignored: runs
        ("experiment\tpath\tmask\ncells\tstacks/cells.tif\n", ""),  # an empty mask cell is allowed
        ("experiment\tpath\tmask\treference\ncells\tstacks/cells.tif\t\tperhaps\n", "column 'reference': 'perhaps'"),
        ("experiment\tpath\ncells\tstacks/cells.tif\ncells\tstacks/cells.tif\n", "the same experiment name"),
    ],
)
def test_sample_sheet_mistakes_name_the_sheet_row_and_column(run_workflow, tmp_path, one_stack, sheet, message):
    path = tmp_path / "sheet.tsv"
    path.write_text(sheet)
    result = run_workflow(tmp_path, "--dry-run", config={"input_dir": one_stack, "samples": path}, check=False)
    output = result.stdout + result.stderr
    if not message:
        assert result.returncode == 0, output[-2000:]
        return
    assert result.returncode != 0 and str(path) in output and message in output, output[-2000:]


@pytest.mark.parametrize(
    "config, message",
    [
        ({"input_dir": "no_such_folder"}, "input_dir 'no_such_folder' is not a folder"),
        ({"input_dir": "."}, "holds no recording (.tif, .tiff, .ome.tif, .czi, .ome.zarr)"),
        ({"samples": "no_such_sheet.tsv"}, "sample sheet 'no_such_sheet.tsv' not found"),
        ({"outputdir": "x"}, "unknown key 'outputdir'. Did you mean output_dir?"),
        ({"nb": "{variance_dof: 1}"}, "unknown key 'nb.variance_dof'. Did you mean nb.variance_ddof?"),
        ({"bleach_correction": "{method: boxcr}"}, "Did you mean 'boxcar'?"),
        ({"segmentation": "{method: cellpos}"}, "Did you mean 'cellpose'?"),
        ({"nb": "{timeseries: {frames_per_set: 10, overlap: 10}}"}, "the overlap (frames shared by consecutive"),
        ({"output_dir": "stacks/cells.tif"}, "is a file, not a folder"),
    ],
)
def test_setting_mistakes_stop_the_run_at_start(run_workflow, tmp_path, one_stack, config, message):
    config = {"input_dir": one_stack} | config
    result = run_workflow(tmp_path, "--dry-run", config=config, check=False)
    assert result.returncode != 0 and message in result.stdout + result.stderr, (result.stdout + result.stderr)[-2000:]


def test_duplicate_stems_stop_the_run_at_start(run_workflow, tmp_path, one_stack):
    write_stack(one_stack / "cells.TIFF", _cells(seed=3)[0])
    result = run_workflow(tmp_path, "--dry-run", config={"input_dir": one_stack}, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "the same experiment name" in output and "cells.TIFF" in output


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_stops_the_run_at_start(run_workflow, tmp_path, one_stack):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = run_workflow(tmp_path, config={"input_dir": one_stack, "output_dir": locked / "results"}, check=False)
        assert result.returncode != 0 and "cannot be written" in result.stdout + result.stderr
    finally:
        locked.chmod(0o755)


# --- the experiment's own masks (segmentation.method: existing) ----------------------------------------


class _Crafted:
    """An object whose unpickling runs a shell command (creates ``path``)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_bad_masks_fail_only_their_experiment(run_workflow, tmp_path, one_stack):
    stack, labels = _cells()
    tifffile.imwrite(one_stack / "good_mask.tif", labels)
    tifffile.imwrite(one_stack / "small_mask.tif", labels[:16, :16])
    tifffile.imwrite(one_stack / "float_mask.tif", labels.astype(np.float32) + 0.5)
    tifffile.imwrite(one_stack / "negative_mask.tif", labels.astype(np.int16) - 3)
    # a _seg.npy holding an object that runs a command when unpickled
    pwned = tmp_path / "pwned"
    np.save(
        one_stack / "crafted_seg.npy",
        np.array({"masks": labels, "x": _Crafted(pwned)}, dtype=object),
        allow_pickle=True,
    )
    for name in ("a", "b", "c", "d", "f", "g"):
        write_stack(one_stack / f"{name}.tif", stack)
    (one_stack / "a_folder").mkdir()
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text(
        "experiment\tpath\tmask\na\tstacks/a.tif\tstacks/good_mask.tif\nb\tstacks/b.tif\tstacks/small_mask.tif\n"
        "c\tstacks/c.tif\tstacks/float_mask.tif\nd\tstacks/d.tif\tstacks/missing_mask.tif\n"
        "e\tstacks/a_folder\tstacks/good_mask.tif\nf\tstacks/f.tif\tstacks/crafted_seg.npy\n"
        "g\tstacks/g.tif\tstacks/negative_mask.tif\n"
    )
    config = {"input_dir": one_stack, "samples": sheet, "segmentation": "{method: existing}"}
    result = run_workflow(tmp_path, "--keep-going", config=config, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    summary = output[output.index("did not finish:") :]
    assert "small_mask.tif: mask shape (16, 16) differs from the stack's frame shape (48, 48)" in summary
    assert "float_mask.tif: a mask must be a 2D integer label image" in summary
    assert "missing_mask.tif: mask file not found (named in" in summary and "row 5" in summary
    assert "a_folder: is a folder, not a stack file" in summary
    assert "crafted_seg.npy: holds a Python object of type posix.system" in summary and "can run code" in summary
    assert not pwned.exists()
    assert "negative_mask.tif: holds negative labels (the smallest is -3)" in summary
    assert "Traceback" not in summary
    assert (tmp_path / "results" / "a" / "average_values_in_roi.csv").is_file()
    for failed in "bcdefg":
        assert not (tmp_path / "results" / failed / "segmentation_image_seg.npy").exists()


def test_counts_far_above_photon_counts_say_what_to_do(doubtful_run):
    """The per-cell tables' log says what to do (nb.detector); the bleach correction works on the data's own
    scale: its automatic parameter's tolerance is 0.1 standard errors of the cells' B, however large."""
    workdir, _, _, _ = doubtful_run
    log = (workdir / "results" / "logs" / "huge_counts" / "tables.log").read_text()
    assert "far above photon counts" in log and "nb.detector" in log
    model = json.loads((workdir / "results" / "huge_counts" / "bleach_correction.json").read_text())
    assert model["method"] == "boxcar" and model["auto"]["apparent_brightness_of_cells"] > 1e4
