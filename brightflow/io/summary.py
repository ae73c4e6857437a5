"""What a run did, said at its end: the closing summary, and which experiments failed and why.

Every run ends with a few lines, printed last and written to ``{output_dir}/run_summary.txt``
(:func:`write_run_summary`): where the results are, the experiments analysed with their cells,
the cells flagged in ``Warnings`` by code, the bleach correction of each experiment and the time
taken. After a run with failures the same lines say which experiments finished and which did not,
each with its cause (the error line of its first failed job's log, or what snakemake's log says
of the job: killed, out of memory) and that log's path, so that a user of ``--keep-going`` sees
at a glance which recordings to fix.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

from .. import quality

__all__ = [
    "RUN_RECORD",
    "check_report_matches_run",
    "failure_summary",
    "run_summary",
    "write_run_record",
    "write_run_summary",
]

#: The closing summary's file, in the output folder.
SUMMARY_FILE = "run_summary.txt"
#: What the last complete run in an output folder analysed, with which settings (for its report).
RUN_RECORD = ".brightflow/run.json"


def _first_error(logs):
    """(message, log path) of the first log (by modification time) holding an error line."""
    found = []
    for path in logs:
        try:
            lines = Path(path).read_text(errors="replace").splitlines()
        except OSError:
            continue
        errors = [line for line in lines if line.startswith(("ERROR ", "CRITICAL "))]
        if errors:
            message = errors[-1].split(" ", 1)[1].removeprefix("brightflow: ")
            found.append((os.path.getmtime(path), message, str(path)))
    if not found:
        return None, None
    _, message, path = min(found)
    return message, path


#: Snakemake's words for a job that a signal ended, and what they mean to a user.
_SIGNALS = {
    "SIGKILL": "killed (signal 9: the system ran out of memory, or someone stopped it)",
    "SIGTERM": "stopped (signal 15)",
    "SIGSEGV": "crashed (segmentation fault)",
}


def _job_failures(snakemake_log):
    """``{absolute log path: cause}`` of the failed jobs in snakemake's own log (its paths are relative to
    the run's folder, the current one), for jobs whose log holds no error line (a job killed by a signal,
    or one that never started its script)."""
    try:
        text = Path(snakemake_log).read_text(errors="replace")
    except (OSError, TypeError):
        return {}
    causes = {}
    starts = [match.start() for match in re.finditer(r"^Error in rule ", text, re.MULTILINE)]
    for index, start in enumerate(starts):
        # the job's own exception comes just before its block ("... died with <Signals.SIGKILL: 9>."), after
        # the previous block
        before = text[starts[index - 1] if index else 0 : start]
        block = text[start : starts[index + 1] if index + 1 < len(starts) else len(text)]
        logs = re.findall(r"^\s+log: (.+?)(?: \(check log file\(s\) for error details\))?$", block, re.MULTILINE)
        signal = re.findall(r"died with <Signals\.(SIG[A-Z]+)", before)
        code = re.findall(r"non-zero exit status (-?\d+)", before)
        if signal:
            cause = _SIGNALS.get(signal[-1], f"ended by {signal[-1]}")
        elif code:
            cause = f"exited with status {code[-1]}"
        else:
            continue
        for path in (part.strip() for line in logs for part in line.split(",")):
            causes[os.path.abspath(path)] = cause
    return causes


def failure_summary(outputs, log_dirs, snakemake_log=None):
    """Lines saying which units finished and which did not, and why.

    Parameters
    ----------
    outputs : dict of str -> list of str
        Each unit (experiment, or experiment/ch<c>) and the files the workflow makes for it.
    log_dirs : dict of str -> list of str
        Each unit's log folders (its own and, for a channel, its experiment's).
    snakemake_log : str, optional
        Snakemake's log of the run (the cause of a job killed before it could log one).

    Returns
    -------
    list of str
        Empty when every unit has all its outputs.
    """
    killed = _job_failures(snakemake_log)
    failed, finished = [], []
    for unit, files in outputs.items():
        missing = [path for path in files if not os.path.exists(path)]
        if not missing:
            finished.append(unit)
            continue
        logs = [path for folder in log_dirs.get(unit, []) for path in sorted(Path(folder).glob("*.log"))]
        message, log_path = _first_error(logs)
        if message is None:
            ended = [(path, killed[os.path.abspath(path)]) for path in logs if os.path.abspath(path) in killed]
            if ended:
                log_path, message = ended[0]
                failed.append(f"  - {unit}: the job was {message} (log: {log_path})")
                continue
            failed.append(
                f"  - {unit}: {len(missing)} output(s) missing, e.g. {missing[0]} (a job failed or was not "
                "run; see snakemake's messages above)"
            )
        else:
            failed.append(f"  - {unit}: {message} (log: {log_path})")
    if not failed:
        return []
    lines = [f"brightflow: {len(failed)} of {len(outputs)} experiment(s) did not finish:"] + failed
    if finished:
        lines.append(
            f"{len(finished)} finished, with complete results: {', '.join(finished)}. The folder table waits for "
            "every experiment: fix or remove the failed ones and run again (only what is missing runs)."
        )
    else:
        lines.append("None finished. Fix the causes above and run again (only what is missing runs).")
    return lines


def _read_cells(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _duration(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def run_summary(output_dir, units, seconds=None):
    """The closing summary of a run whose every unit finished.

    Parameters
    ----------
    output_dir : str
        The output folder.
    units : sequence of str
        The units analysed (experiment, or experiment/ch<c>).
    seconds : float, optional
        The run's duration.

    Returns
    -------
    list of str
    """
    from ..detrend import CorrectionModel

    folder = os.path.abspath(output_dir)
    took = f" in {_duration(seconds)}" if seconds is not None else ""
    lines = [
        f"brightflow: {len(units)} experiment(s) analysed{took}. Results: {folder}/ "
        "(Folder_average_values_in_roi.csv, and a folder per experiment; every figure on one page: snakemake --report report.html)"
    ]
    flagged = {}
    for unit in units:
        path = os.path.join(folder, unit)
        try:
            cells = _read_cells(os.path.join(path, "average_values_in_roi.csv"))
            model = CorrectionModel.from_json(json.loads(Path(path, "bleach_correction.json").read_text()))
        except (OSError, ValueError, KeyError) as error:
            lines.append(f"  - {unit}: its results cannot be read ({error})")
            continue
        correction = model.method if model.parameter is None else f"{model.method} {model.describe_parameter()}"
        if model.replaced is not None:
            correction = f"none ({model.method_requested} not applied)"
        lines.append(f"  - {unit}: {len(cells)} cell(s); bleach correction {correction}")
        if not cells:
            flagged.setdefault(quality.NO_CELLS, []).append(unit)
        for row in cells:
            for part in filter(None, (row.get("Warnings") or "").split("; ")):
                flagged.setdefault(quality.code_of(part), []).append(f"{unit} cell {row['Cell ID']}")
    if flagged:
        lines.append("Cells flagged in Warnings (docs/quality.md):")
        for code in quality.CODES:
            if code in flagged:
                where = flagged[code]
                shown = ", ".join(where[:6]) + (f" and {len(where) - 6} more" if len(where) > 6 else "")
                lines.append(f"  - {code}: {len(where)} cell(s): {shown}")
    else:
        lines.append("No cell is flagged in Warnings.")
    return lines


def write_run_summary(output_dir, lines):
    """Write the summary lines to ``{output_dir}/run_summary.txt`` (ignored when the folder is gone)."""
    try:
        Path(output_dir, SUMMARY_FILE).write_text("\n".join(lines) + "\n")
    except OSError:
        pass


def write_run_record(output_dir, units, settings, source):
    """Record, after a run whose every unit finished, what it analysed: its units, its settings (the
    config that settings.json records) and where its stacks came from. ``snakemake --report`` checks
    the config it is given against it (:func:`check_report_matches_run`)."""
    path = Path(output_dir, RUN_RECORD)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"units": list(units), "settings": settings, "source": source}, indent=1, sort_keys=True)
    )


def check_report_matches_run(output_dir, units, settings, source):
    """Before ``snakemake --report``: the output folder's results must be those of this config.

    ValueError, saying what differs and what to do, when the folder holds no complete run, or the last
    complete run analysed other experiments or used other settings (a report would mix two analyses:
    this config's experiments with another run's folder table and figure).
    """
    path = Path(output_dir, RUN_RECORD)
    if not path.is_file():
        raise ValueError(
            f"{output_dir} holds no complete run of this workflow (no {RUN_RECORD}): run it with the same "
            "configuration first, then make the report"
        )
    record = json.loads(path.read_text())
    settings = json.loads(json.dumps(settings))  # as the record holds it (tuples as lists)
    if list(record["units"]) != list(units):
        theirs, ours = set(record["units"]), set(units)
        raise ValueError(
            f"{output_dir} holds the results of another run ({record['source']}: experiments "
            f"{', '.join(record['units'])}), not of this configuration ({source}: {', '.join(units)}); "
            f"only in that run: {', '.join(sorted(theirs - ours)) or 'none'}, only in this configuration: "
            f"{', '.join(sorted(ours - theirs)) or 'none'}. Give --report that run's configuration (its --configfile "
            "and --config), or run this one into its own output_dir"
        )
    if record["settings"] != settings:
        changed = sorted(
            key for key in set(record["settings"]) | set(settings) if record["settings"].get(key) != settings.get(key)
        )
        raise ValueError(
            f"the results in {output_dir} were made with other settings than this configuration's (differing: "
            f"{', '.join(changed)}): run the workflow with this configuration first (only what changed reruns), or "
            "give --report the configuration of the run you want to report"
        )
