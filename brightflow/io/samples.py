"""The sample table: which recordings a run analyses, each under one experiment name.

From a folder (``input_dir``) or a tab-separated sample sheet (``samples``). A row of the table
is one experiment: its name, the recording's path, the series within the file (None for a file
with one), an optional mask, the monomer-reference flag and where it came from (for messages).

A file with several series (an OME-TIFF's stage positions, a CZI's scenes, a bioformats2raw
OME-Zarr's images) gives one experiment per series, named ``<file stem>_<series name or index>``.
In a sample sheet, a file with several series needs the ``series`` column (the index from 0, or
the series' name); the run refuses at start and lists the series otherwise.

Every name is checked (:func:`name_problem`) before the workflow uses it as a Snakemake wildcard
and a folder name: what cannot be made safe is refused at start with the file or row that gave it.
Nothing here imports Snakemake; common.smk turns :class:`InputError` into Snakemake's own error.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from .errors import InputError
from .sources import file_kind, list_series, recording_stem, series_label

__all__ = [
    "SAMPLE_COLUMNS",
    "name_problem",
    "path_problem",
    "reference_flag",
    "sheet_rows",
    "table_from_folder",
    "table_from_sheet",
]

#: The sample sheet's columns brightflow reads (others are ignored).
SAMPLE_COLUMNS = ("experiment", "path", "series", "mask", "reference")
#: The sample sheet's `reference` column: these values mark the monomer reference (case-insensitive);
#: false, no, n, 0 or an empty cell do not.
REFERENCE_TRUE = {"true", "yes", "y", "1", "x"}
REFERENCE_FALSE = {"false", "no", "n", "0", ""}

#: A name ending in 20 or more repeats of one piece (of up to 100 characters): Snakemake takes such a
#: wildcard value for a rule feeding itself (PeriodicWildcardError, snakemake.io.PeriodicityDetector).
_PERIODIC = re.compile(r"(.{1,100}?)\1{19,}$", re.DOTALL)


def name_problem(name, reserved=()):
    """Why ``name`` cannot name an experiment (a folder under output_dir and a Snakemake wildcard), or None.

    Not empty, no path separator, not ``.`` or ``..``, no control character, no leading ``-`` (it
    would read as an option), no space at either end, no ``{`` or ``}`` (Snakemake's wildcards), not
    ending in 20 repeats of one piece (Snakemake's check for a rule feeding itself), and not one of
    ``reserved`` (brightflow's own folders and files in output_dir). Spaces inside, glob characters
    (``*``, ``?``, ``[``), any other punctuation and any other unicode are fine: names only ever reach
    the file system as one folder name, and paths are never read as glob patterns.
    """
    if not name or not name.strip():
        return "is empty"
    if name in (".", ".."):
        return f"is {name!r}, which names a folder that is not the experiment's own"
    if Path(name).name != name or "\\" in name:
        return f"{name!r} holds a path separator (a slash or a backslash)"
    if any(ord(character) < 32 or ord(character) == 127 for character in name):
        return f"{name!r} holds a control character"
    if name.startswith("-"):
        return f"{name!r} starts with '-', which commands read as an option"
    if name != name.strip():
        return f"{name!r} starts or ends with a space"
    if "{" in name or "}" in name:
        return f"{name!r} holds a brace ({{ or }}), which Snakemake reads as a wildcard"
    periodic = _PERIODIC.search(name)
    if periodic:
        return (
            f"{name!r} ends with {len(periodic.group(0)) // len(periodic.group(1))} repeats of {periodic.group(1)!r}, "
            "which Snakemake takes for a rule feeding itself"
        )
    if name in reserved or name.lower() in {item.lower() for item in reserved}:
        return (
            f"{name!r} is reserved for brightflow's own folder or file of that name in output_dir "
            f"({', '.join(sorted(reserved))})"
        )
    return None


def path_problem(path):
    """Why the workflow cannot be handed ``path`` as an input file, or None: Snakemake reads ``{`` and ``}``
    in any input path as a wildcard."""
    if "{" in str(path) or "}" in str(path):
        return f"{str(path)!r} holds a brace ({{ or }}), which Snakemake reads as a wildcard in any file path"
    return None


def reference_flag(value, where):
    text = "" if value is None else str(value).strip().lower()
    if text in REFERENCE_TRUE:
        return True
    if text in REFERENCE_FALSE:
        return False
    raise InputError(
        f"{where}, column 'reference': {value!r} is neither true nor false; write true (or yes, x, 1) for the "
        "monomer reference experiment and leave it empty (or false) for the others."
    )


def _record(experiment, path, series, origin, mask=None, reference=False):
    return {
        "experiment": experiment,
        "path": str(path),
        "series": series,
        "mask": mask,
        "reference": reference,
        "origin": origin,
    }


def _series_or_none(path):
    """The file's series; None when it cannot be read (its first job then fails with the file's message)."""
    try:
        return list_series(path)
    except InputError:
        return None


def _experiments_of_file(path, origin, stem=None):
    """The records of a file: one, or one per series (``<stem>_<series name or index>``)."""
    stem = recording_stem(path) if stem is None else stem
    series = _series_or_none(path)
    if not series or len(series) == 1:
        return [_record(stem, path, None, origin)]
    labels = [series_label(info) for info in series]
    if len(set(labels)) != len(labels):  # names repeat: the index names each
        labels = [str(info.index) for info in series]
    return [
        _record(
            f"{stem}_{label}",
            path,
            info.index,
            f"{origin}, series {info.index}" + (f" ({info.name!r})" if info.name else ""),
        )
        for info, label in zip(series, labels, strict=False)
    ]


def table_from_folder(folder):
    """(records, notes) of every recording in ``folder``: the records of the sample table, and one line
    for each entry named like a recording that is not read (a dangling link, a folder named like a
    file, a LIF or ND2 file), which the workflow prints at start.

    Raises
    ------
    InputError
        The folder is missing, or holds no recording.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(
            f"input_dir {str(folder)!r} is not a folder. Set input_dir in config/config.yaml "
            "or with --config input_dir=/path/to/stacks (or input_dir=demo)."
        )
    records, notes = [], []
    for entry in sorted(folder.iterdir()):
        kind = file_kind(entry)
        if kind is None:
            continue
        if entry.is_symlink() and not entry.exists():
            notes.append(f"{entry}: skipped: a link to {os.readlink(entry)}, which does not exist.")
        elif kind == "unsupported":
            try:
                list_series(entry)
            except InputError as error:
                notes.append(f"skipped: {error}")
        elif kind == "zarr":
            if entry.is_dir():
                records += _experiments_of_file(entry, f"input_dir {folder}")
            else:
                notes.append(f"{entry}: skipped: named like an OME-Zarr, which is a folder, but it is a file.")
        elif entry.is_dir():
            notes.append(f"{entry}: skipped: a folder named like a {entry.suffix} file.")
        elif entry.is_file():
            records += _experiments_of_file(entry, f"input_dir {folder}")
        else:
            notes.append(f"{entry}: skipped: not a regular file.")
    if not records:
        raise InputError(
            f"input_dir {str(folder)!r} holds no recording (.tif, .tiff, .ome.tif, .czi, .ome.zarr)."
            + (" " + " ".join(notes) if notes else "")
        )
    return records, notes


def _sheet_text(sheet):
    """The sheet's text, or :class:`InputError` saying how it is saved and how to save it."""
    data = Path(sheet).read_bytes()
    fix = (
        "Save it as UTF-8 text, tab-separated (Excel: File > Save As > 'Text (Tab delimited)' or 'UTF-8 CSV' "
        "with tabs; LibreOffice: Text CSV, character set UTF-8, field delimiter {Tab})."
    )
    if data[:4] == b"PK\x03\x04":
        raise InputError(f"{sheet}: the sample sheet is an Excel workbook (.xlsx), not text. {fix}")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or (
        len(data) > 3 and (data[1] == 0 or data[0] == 0) and b"\0" in data[:64]
    ):
        raise InputError(f"{sheet}: the sample sheet is saved as UTF-16 (Excel's 'Unicode Text'). {fix}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InputError(
            f"{sheet}: the sample sheet is not UTF-8 text (line {line} holds byte 0x{data[error.start]:02x}; it was "
            f"probably saved as Latin-1 or Windows-1252). {fix}"
        ) from None


def sheet_rows(sheet):
    """(line number, {column: text}) of every row of a tab-separated sheet; comments (#) and blank
    lines skipped, cells stripped, missing trailing cells empty."""
    text = _sheet_text(sheet)
    lines = [
        (number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip() and not line.startswith("#")
    ]
    if not lines:
        raise InputError(f"{sheet}: the sample sheet is empty; it needs a header line 'experiment<TAB>path'.")
    header = [cell.strip() for cell in next(csv.reader([lines[0][1]], delimiter="\t"))]
    missing = [column for column in ("experiment", "path") if column not in header]
    if missing:
        raise InputError(
            f"{sheet}, line {lines[0][0]} (the header): the sample sheet lacks column(s) {missing}; its columns are "
            f"{header}. Separate the columns with tabs."
        )
    rows = []
    for number, line in lines[1:]:
        cells = [cell.strip() for cell in next(csv.reader([line], delimiter="\t"))]
        if len(cells) > len(header):
            raise InputError(
                f"{sheet}, row {number}: {len(cells)} cells but the header names {len(header)} columns; check the tabs."
            )
        rows.append((number, dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=False))))
    return rows


def _choose_series(path, wanted, where):
    """The series index a sheet row names (``wanted``: its index or its name), checked against the file;
    None for a file with one series. A file with several needs it: the error lists them."""
    found = _series_or_none(path)
    if not found:  # missing or unreadable: its first job says so
        return int(wanted) if wanted and wanted.isdigit() else None
    listing = "; ".join(
        f"{info.index}" + (f" ({info.name!r})" if info.name else "") + f": shape {info.shape} axes {info.axes}"
        for info in found
    )
    if not wanted:
        if len(found) == 1:
            return None
        raise InputError(
            f"{where}: {path} holds {len(found)} series ({listing}); brightflow analyses one per experiment. Add a "
            "'series' column naming the one to analyse (its index from 0, or its name), one row per series."
        )
    for info in found:
        if wanted == str(info.index) or (info.name and wanted == info.name):
            return info.index if len(found) > 1 else None
    raise InputError(f"{where}, column 'series': {path} has no series {wanted!r}; it holds {listing}.")


def table_from_sheet(sheet, validator=None, reserved=()):
    """The records of a tab-separated sample sheet (relative paths are relative to the sheet's folder).

    Parameters
    ----------
    sheet : str
    validator : jsonschema validator, optional
        The sample sheet's schema (workflow/schemas/samples.schema.yaml), applied to each row.
    reserved : sequence of str
        brightflow's own names in output_dir, which no experiment may take (:func:`name_problem`).

    Raises
    ------
    InputError
        Naming the sheet, the row and the column of the first mistake.
    """
    sheet = Path(sheet)
    if not sheet.is_file():
        if sheet.is_dir():
            raise InputError(f"samples: {str(sheet)!r} is a folder; give the path of the sample sheet (a .tsv file).")
        raise InputError(f"samples: sample sheet {str(sheet)!r} not found.")

    def resolve(value):
        if not value:
            return None
        value = Path(value).expanduser()
        return str(value if value.is_absolute() else sheet.parent / value)

    records = []
    for number, row in sheet_rows(sheet):
        where = f"{sheet}, row {number}"
        for column in ("experiment", "path"):
            if not row.get(column):
                raise InputError(f"{where}, column {column!r}: is empty; give each experiment a name and a stack.")
        problem = name_problem(row["experiment"], reserved)
        if problem:
            raise InputError(
                f"{where}, column 'experiment': the name {problem}. Choose a name that is one folder name."
            )
        values = {column: row.get(column) or None for column in SAMPLE_COLUMNS}
        for error in validator.iter_errors(values) if validator is not None else ():
            column = error.path[0] if error.path else "?"
            raise InputError(f"{where}, column {column!r}: {error.message}.")
        path, mask = resolve(row["path"]), resolve(row.get("mask"))
        for column, value in (("path", path), ("mask", mask)):
            problem = path_problem(value) if value else None
            if problem:
                raise InputError(f"{where}, column {column!r}: {problem}. Rename the file or its folder.")
        records.append(
            {
                "experiment": row["experiment"],
                "path": path,
                "series": _choose_series(path, (row.get("series") or "").strip(), where),
                "mask": mask,
                "reference": reference_flag(row.get("reference"), where),
                "origin": where,
            }
        )
    if not records:
        raise InputError(f"{sheet}: the sample sheet lists no experiment.")
    return records
