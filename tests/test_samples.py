"""brightflow.io.samples: the sample table from a folder or a sheet, one experiment per series, and the
checks that make every accepted name safe for Snakemake and for brightflow's outputs."""

from __future__ import annotations

import numpy as np
import pytest
from format_writers import write_czi, write_ome_tiff, write_ome_zarr
from helpers import write_stack

from brightflow.io import InputError, samples

OWN = ("logs", "benchmarks", "Folder_brightness_summary.png")


def _stack(frames=5, seed=0):
    return np.random.default_rng(seed).integers(1, 100, (frames, 8, 9)).astype(np.uint16)


@pytest.mark.parametrize(
    "name, problem",
    [
        ("cells", None),
        ("cell line 2 µ-β", None),
        ("x?", None),
        ("y[1]*", None),
        ("a" * 19, None),
        ("b" + "a" * 20, "ends with 20 repeats of 'a'"),
        ("x" + "ab" * 25, "ends with 25 repeats of 'ab'"),
        ("a{x}", "holds a brace"),
        ("Folder_brightness_summary.png", "is reserved for brightflow's own folder or file"),
        ("LOGS", "is reserved for brightflow's own folder or file"),
        ("a/b", "holds a path separator"),
        ("-x", "starts with '-'"),
        ("", "is empty"),
    ],
)
def test_name_problem(name, problem):
    found = samples.name_problem(name, OWN)
    assert (found is None) if problem is None else (problem in found), found


def test_a_folder_gives_one_experiment_per_series_and_reports_what_it_skips(tmp_path):
    write_stack(tmp_path / "plain.tif", _stack())
    write_czi(tmp_path / "scenes.czi", [_stack(seed=1), _stack(seed=2)])
    write_ome_tiff(tmp_path / "positions.ome.tif", [_stack(), _stack()], names=["A 1", "A 1"])  # same names
    write_ome_tiff(tmp_path / "named.ome.tif", [_stack(), _stack()], names=["left/top", "right"])
    write_ome_zarr(tmp_path / "image.ome.zarr", _stack())
    (tmp_path / "gone.tif").symlink_to(tmp_path / "nowhere.tif")
    (tmp_path / "folder.tif").mkdir()
    (tmp_path / "leica.lif").write_bytes(b"\0" * 16)
    (tmp_path / "notes.txt").write_text("not a recording")
    (tmp_path / "text.tif").write_text("not a TIFF: its own job says so")
    records, notes = samples.table_from_folder(tmp_path)
    table = {record["experiment"]: (record["path"].rsplit("/", 1)[-1], record["series"]) for record in records}
    assert table == {
        "image": ("image.ome.zarr", None),
        "named_left_top": ("named.ome.tif", 0),
        "named_right": ("named.ome.tif", 1),
        "plain": ("plain.tif", None),
        "positions_0": ("positions.ome.tif", 0),
        "positions_1": ("positions.ome.tif", 1),
        "scenes_0": ("scenes.czi", 0),
        "scenes_1": ("scenes.czi", 1),
        "text": ("text.tif", None),
    }
    assert any("folder.tif: skipped: a folder named like a .tif file" in note for note in notes)
    assert any("gone.tif: skipped: a link to" in note for note in notes)
    assert any("leica.lif: is a Leica LIF file" in note for note in notes)
    assert not any("notes.txt" in note for note in notes)


def test_a_folder_without_recordings_says_what_it_skipped(tmp_path):
    (tmp_path / "x.tif").mkdir()
    with pytest.raises(InputError, match=r"holds no recording .*x\.tif: skipped: a folder named like a \.tif file"):
        samples.table_from_folder(tmp_path)


def test_a_sheet_names_the_series_and_refuses_a_file_of_several_without_it(tmp_path):
    write_ome_tiff(tmp_path / "positions.ome.tif", [_stack(), _stack(frames=7)], names=["preview", "cell 2"])
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("experiment\tpath\tseries\na\tpositions.ome.tif\tcell 2\nb\tpositions.ome.tif\t0\n")
    records = samples.table_from_sheet(sheet)
    assert [(record["experiment"], record["series"]) for record in records] == [("a", 1), ("b", 0)]
    sheet.write_text("experiment\tpath\na\tpositions.ome.tif\n")
    with pytest.raises(
        InputError,
        match=r"row 2: .*positions\.ome\.tif holds 2 series \(0 \('preview'\): shape "
        r"\(5, 8, 9\) axes TYX; 1 \('cell 2'\).*Add a 'series' column",
    ):
        samples.table_from_sheet(sheet)


@pytest.mark.parametrize(
    "data, message",
    [
        ("experiment\tpath\na\tx.tif\n".encode("utf-16"), "is saved as UTF-16"),
        ("experiment\tpath\na\tx.tif\n".encode("utf-16-le"), "is saved as UTF-16"),
        ("experiment\tpath\nà\tx.tif\n".encode("latin-1"), "is not UTF-8 text (line 2 holds byte 0xe0"),
        (b"PK\x03\x04rest of a zip", "is an Excel workbook (.xlsx)"),
    ],
)
def test_sheet_encodings_are_named_with_how_to_save_the_sheet(tmp_path, data, message):
    sheet = tmp_path / "sheet.tsv"
    sheet.write_bytes(data)
    with pytest.raises(InputError, match="Save it as UTF-8 text") as error:
        samples.table_from_sheet(sheet)
    assert str(sheet) in str(error.value) and message in str(error.value)


def test_paths_with_braces_are_refused_in_a_sheet(tmp_path):
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("experiment\tpath\na\tdata{1}/x.tif\n")
    with pytest.raises(InputError, match=r"row 2, column 'path': .*holds a brace"):
        samples.table_from_sheet(sheet)
    with pytest.raises(InputError, match="is a folder; give the path of the sample sheet"):
        samples.table_from_sheet(tmp_path)
