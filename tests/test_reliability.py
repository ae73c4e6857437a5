"""Reliability: results always belong to the current inputs, one bad input never blocks the others,
names and settings are checked with messages that say where and what, one run at a time per output
folder, and outputs are byte-identical wherever and however often they are made."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers import REPO, held_run, jobs_run, write_stack

from brightflow import simulate

pytestmark = pytest.mark.workflow


def _stack(seed, brightness=1.0, frames=30):
    stack, _ = simulate.demo_experiment([(brightness, 6.0)], seed=seed, shape=(32, 32), frames=frames)
    return stack


@pytest.fixture
def two_stacks(tmp_path):
    """A folder with two experiments of different brightness (so swapping them changes results)."""
    folder = tmp_path / "stacks"
    folder.mkdir()
    write_stack(folder / "a.tif", _stack(1, 1.0))
    write_stack(folder / "b.tif", _stack(2, 4.0))
    return folder


def _brightness(results, experiment):
    return json.loads((results / experiment / "settings.json").read_text())["input"]["sha256"], np.load(
        results / experiment / "brightness.npy"
    )


# --- content-aware reruns ---------------------------------------------------------------------------


def test_reruns_follow_the_content_of_the_inputs_not_their_times(run_workflow, tmp_path, two_stacks):
    config = {"input_dir": two_stacks}
    run_workflow(tmp_path, config=config)
    results = tmp_path / "results"
    before = {name: _brightness(results, name) for name in "ab"}

    # touching a stack (a new modification time, the same bytes) reruns nothing
    os.utime(two_stacks / "a.tif")
    assert "Nothing to be done" in run_workflow(tmp_path, "--dry-run", config=config).stdout
    # nor does a copy of the same bytes (another inode, another time)
    shutil.copy(two_stacks / "b.tif", two_stacks / "b.copy")
    os.replace(two_stacks / "b.copy", two_stacks / "b.tif")
    assert "Nothing to be done" in run_workflow(tmp_path, "--dry-run", config=config).stdout

    # swapping two stacks' names (mv keeps the times) reruns both, and each result follows its file
    os.replace(two_stacks / "a.tif", two_stacks / "swap.tif")
    os.replace(two_stacks / "b.tif", two_stacks / "a.tif")
    os.replace(two_stacks / "swap.tif", two_stacks / "b.tif")
    ran = jobs_run(run_workflow(tmp_path, config=config))
    assert ran["projection"] == 2 and ran["nb_maps"] == 2 and ran["settings"] == 2
    after = {name: _brightness(results, name) for name in "ab"}
    assert after["a"][0] == before["b"][0] and after["b"][0] == before["a"][0]
    np.testing.assert_array_equal(after["a"][1], before["b"][1])

    # a different file with an older modification time (cp -p, rsync -a) reruns its experiment
    write_stack(tmp_path / "new.tif", _stack(7, 2.0))
    os.utime(tmp_path / "new.tif", (1_000_000_000, 1_000_000_000))
    shutil.copy2(tmp_path / "new.tif", two_stacks / "a.tif")
    result = run_workflow(tmp_path, config=config)
    ran = jobs_run(result)
    assert ran["projection"] == 1 and ran["settings"] == 1, ran
    recorded = json.loads((results / "a" / "settings.json").read_text())["input"]["sha256"]
    import hashlib

    assert recorded == hashlib.sha256((two_stacks / "a.tif").read_bytes()).hexdigest()


def test_a_config_change_does_not_hash_the_stacks_again(run_workflow, tmp_path, two_stacks):
    config = {"input_dir": two_stacks}
    run_workflow(tmp_path, config=config)
    cache = tmp_path / "results" / ".brightflow" / "input_digests.json"
    entries = json.loads(cache.read_text())
    assert len(entries) == 2
    stamp = cache.stat().st_mtime_ns
    ran = jobs_run(run_workflow(tmp_path, config=config | {"nb": "{gamma: 0.5}"}))
    assert "settings" in ran and "projection" not in ran
    assert cache.stat().st_mtime_ns == stamp  # every digest came from the cache


def test_a_digest_follows_the_file_and_the_cache_others_write_within_one_process(tmp_path):
    """The cache is read once per process (one workflow parse asks for every stack's digest), yet a
    changed file is hashed again and an entry another process wrote is taken from the cache."""
    import hashlib

    from brightflow import io as bio

    cache, path = str(tmp_path / "digests.json"), tmp_path / "stack.bin"
    path.write_bytes(b"first")
    assert bio.content_digest(str(path), cache) == hashlib.sha256(b"first").hexdigest()
    path.write_bytes(b"other")  # same size, a new modification time
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert bio.content_digest(str(path), cache) == hashlib.sha256(b"other").hexdigest()
    # another process records a digest for a second file: taken from the cache, not computed
    second = tmp_path / "second.bin"
    second.write_bytes(b"second")
    code = f"from brightflow import io; io.content_digest({str(second)!r}, {cache!r})"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    entries = json.loads((tmp_path / "digests.json").read_text())
    entries[str(second)]["sha256"] = "recorded by the other process"
    (tmp_path / "digests.json").write_text(json.dumps(entries))
    assert bio.content_digest(str(second), cache) == "recorded by the other process"


# --- names, the sample sheet and the config ------------------------------------------------------


@pytest.mark.parametrize(
    "name, message",
    [
        ("..", "the name is '..', which names a folder"),
        (".", "the name is '.', which names a folder"),
        ("a/b", "holds a path separator"),
        ("-rf", "starts with '-'"),
        ("bell\x07", "holds a control character"),
        ("logs", "is reserved for brightflow's own folder"),
    ],
)
def test_unsafe_experiment_names_are_refused_naming_the_sheet_row_and_column(
    run_workflow, tmp_path, two_stacks, name, message
):
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text(f"experiment\tpath\ngood\tstacks/a.tif\n{name}\tstacks/b.tif\n")
    result = run_workflow(tmp_path, "--dry-run", config={"input_dir": two_stacks, "samples": sheet}, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"{sheet}, row 3, column 'experiment'" in output and message in output, output[-2000:]
    assert not (tmp_path / "results").exists()


def test_empty_cells_of_a_sheet_name_the_row_and_column(run_workflow, tmp_path, two_stacks):
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("experiment\tpath\n\tstacks/a.tif\n")
    result = run_workflow(tmp_path, "--dry-run", config={"input_dir": two_stacks, "samples": sheet}, check=False)
    assert result.returncode != 0 and f"{sheet}, row 2, column 'experiment': is empty" in result.stdout + result.stderr


def test_names_with_spaces_unicode_and_shell_characters_work(run_workflow, tmp_path):
    folder = tmp_path / "stacks"
    folder.mkdir()
    # glob characters too: tifffile.imread reads a path holding * ? [ as a pattern (x? matches x1)
    names = ["cell line 2", "Zellen_µ-β", "x$(touch pwned);y", "quote'and\"more", "x?", "x1", "y[1]", "star*"]
    for index, name in enumerate(names):
        write_stack(folder / f"{name}.tif", _stack(index))
    run_workflow(tmp_path, config={"input_dir": folder})
    for index, name in enumerate(names):
        assert (tmp_path / "results" / name / "average_values_in_roi.csv").is_file(), name
        # each experiment's own frames, not another's that a glob matched
        with tifffile.TiffFile(tmp_path / "results" / name / "segmentation_image.tif") as tif:
            np.testing.assert_allclose(tif.asarray(), _stack(index).mean(axis=0), rtol=1e-6, err_msg=name)
    assert not (tmp_path / "pwned").exists() and not (REPO / "pwned").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "bleach_correction={methd: boxcar}",
            "unknown key 'bleach_correction.methd'. Did you mean bleach_correction.method?",
        ),
        ("bleach_correction={method: boxcr}", "config key bleach_correction.method is 'boxcr'"),
        ("nb={threshold: hung}", "Did you mean 'huang'?"),
        ("segmentation={erode_pixels: -2}", "config key segmentation.erode_pixels is -2"),
        ("outputdir=x", "unknown key 'outputdir'. Did you mean output_dir?"),
    ],
)
def test_config_mistakes_name_the_key_and_the_nearest_valid_one(run_workflow, tmp_path, two_stacks, override, message):
    key, value = override.split("=", 1)
    result = run_workflow(tmp_path, "--dry-run", config={"input_dir": two_stacks, key: value}, check=False)
    assert result.returncode != 0 and message in result.stdout + result.stderr, (result.stdout + result.stderr)[-2000:]


def test_nested_overrides_arrive_with_their_types(run_workflow, tmp_path, two_stacks):
    """--config's nested form (the one snakemake accepts: key='{subkey: value}') keeps the other keys of
    the section and gives each value the type its key needs."""
    config = {"input_dir": two_stacks, "segmentation": "{erode_pixels: 2}", "nb": "{threshold: 1.5, gamma: 0.5}"}
    run_workflow(tmp_path, config=config)
    settings = json.loads((tmp_path / "results" / "a" / "settings.json").read_text())["parameters"]
    assert settings["segmentation"]["erode_pixels"] == 2 and settings["segmentation"]["method"] == "threshold"
    assert (
        settings["nb"]["threshold"] == 1.5 and settings["nb"]["gamma"] == 0.5 and settings["nb"]["variance_ddof"] == 1
    )


# --- one bad input never blocks the others -------------------------------------------------------------


def test_a_missing_file_in_a_sheet_fails_only_its_experiment_and_the_summary_names_it(
    run_workflow, tmp_path, two_stacks
):
    tifffile.imwrite(two_stacks / "flat.tif", np.ones((32, 32), dtype=np.uint16))
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text(
        "experiment\tpath\na\tstacks/a.tif\ngone\tstacks/not_there.tif\nflat\tstacks/flat.tif\nb\tstacks/b.tif\n"
    )
    result = run_workflow(tmp_path, "--keep-going", config={"input_dir": two_stacks, "samples": sheet}, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    summary = output[output.index("brightflow: 2 of 4 experiment(s) did not finish") :]
    assert f"gone: {two_stacks}/not_there.tif: stack file not found (named in {sheet}, row 3)" in summary
    assert "(log: results/logs/gone/missing_path.log)" in summary
    assert (
        f"flat: {two_stacks}/flat.tif: is a single 2D image" in summary
        and "results/logs/flat/projection.log" in summary
    )
    for good in "ab":
        assert (tmp_path / "results" / good / "average_values_in_roi.csv").is_file()
    assert not (tmp_path / "results" / "gone").exists()
    # which finished, said last, and kept in run_summary.txt
    assert "2 finished, with complete results: a, b." in summary
    assert output.rstrip().endswith("run again (only what is missing runs).")
    assert (tmp_path / "results" / "run_summary.txt").read_text().startswith("brightflow: 2 of 4 experiment(s)")


def test_an_input_deleted_mid_run_fails_only_its_experiment(run_workflow, tmp_path, two_stacks):
    """Under --keep-going, a stack that disappears while the run goes on fails its own experiment, with that
    cause in the summary; the other experiment's results are complete and the output folder's lock is given
    back."""
    results = tmp_path / "results"
    # Deterministic: the run cannot end before the block does (helpers.held_run), and b's stack is deleted
    # while b's jobs that read it (bleach correction, N&B maps, settings) cannot all have run yet: they wait
    # for b's projection and segmentation, which wait for a free core.
    with held_run(tmp_path, "--keep-going", config={"input_dir": two_stacks}, must_succeed=False) as run:
        (two_stacks / "b.tif").unlink()
    assert run.returncode != 0
    output = (tmp_path / "held_run" / "snakemake.log").read_text()
    summary = (results / "run_summary.txt").read_text()
    assert summary.startswith("brightflow: 1 of 2 experiment(s) did not finish"), summary
    assert (
        f"  - b: {two_stacks}/b.tif: the recording was removed while the run went on (it was there when the "
        "run started). Put it back and run again. (log: results/logs/b/"
    ) in summary, summary
    assert "1 finished, with complete results: a." in summary
    assert output.rstrip().endswith(summary.rstrip().splitlines()[-1])
    assert (results / "a" / "average_values_in_roi.csv").is_file()
    assert not (results / ".brightflow" / "run.lock").exists()


def test_a_successful_run_ends_with_its_summary(run_workflow, tmp_path):
    """Every run ends with a few lines, the last a user reads and kept in run_summary.txt: where the
    results are, the experiments with their cells and bleach correction, the flagged cells, the time."""
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    for name, seed in (("a", 3), ("b", 4)):
        write_stack(
            stacks / f"{name}.tif",
            simulate.demo_experiment([(1.0, 6.0), (2.0, 4.0)], seed=seed, shape=(64, 64), frames=60)[0],
        )
    result = run_workflow(tmp_path, config={"input_dir": stacks})
    output = (result.stdout + result.stderr).rstrip()
    summary = (tmp_path / "results" / "run_summary.txt").read_text()
    lines = summary.splitlines()
    assert re.fullmatch(
        r"brightflow: 2 experiment\(s\) analysed in \d+ (s|min \d+ s)\. Results: "
        + re.escape(str(tmp_path / "results"))
        + r"/ .*",
        lines[0],
    ), lines[0]
    for name in "ab":
        cells = len(pd.read_csv(tmp_path / "results" / name / "average_values_in_roi.csv"))
        assert any(
            re.fullmatch(rf"  - {name}: {cells} cell\(s\); bleach correction boxcar l = \d+ \(auto\)", line)
            for line in lines
        ), lines
    assert lines[-1] == "No cell is flagged in Warnings."
    assert output.endswith(summary.rstrip())  # after snakemake's own last lines


def test_every_experiment_failing_says_none_finished(tmp_path):
    """The failure summary never claims that other results are complete when none are."""
    from brightflow import io as bio

    outputs = {name: [str(tmp_path / name / "out.csv")] for name in ("a", "b")}
    lines = bio.failure_summary(outputs, {})
    assert lines[0] == "brightflow: 2 of 2 experiment(s) did not finish:"
    assert lines[-1].startswith("None finished.") and not any("complete results" in line for line in lines)


def test_a_killed_job_is_named_as_killed(tmp_path, monkeypatch):
    """A job ended by a signal writes no error line of its own: the cause comes from snakemake's log of a real
    run whose job was killed (SIGKILL, as the system's out-of-memory killer does)."""
    (tmp_path / "Snakefile").write_text(
        'rule killed:\n    output: "a/out.csv"\n    log: "logs/a/killed.log"\n'
        '    shell: "echo started > {log}; kill -9 $$"\n'
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            "1",
            "--directory",
            str(tmp_path),
            "--snakefile",
            str(tmp_path / "Snakefile"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode != 0
    snakemake_log = sorted((tmp_path / ".snakemake" / "log").glob("*.snakemake.log"))[-1]
    from brightflow import io as bio

    monkeypatch.chdir(tmp_path)  # where the hooks run: the run's folder, whose relative paths the log holds
    lines = bio.failure_summary({"a": ["a/out.csv"]}, {"a": ["logs/a"]}, str(snakemake_log))
    assert lines[1].startswith("  - a: the job was killed (signal 9"), (lines, snakemake_log.read_text())


# --- one run at a time per output folder ----------------------------------------------------------------


def test_a_second_run_on_the_same_output_folder_refuses_while_the_first_runs(run_workflow, tmp_path, two_stacks):
    other = tmp_path / "elsewhere"
    other.mkdir()
    config = {"input_dir": two_stacks, "output_dir": tmp_path / "shared_results"}
    lock = tmp_path / "shared_results" / ".brightflow" / "run.lock"
    # The first run cannot end before the block does (helpers.held_run: one more job waits for the test to
    # release it), however long the second runs take to start: no race with the first run's end.
    with held_run(tmp_path, config=config) as first:
        holder = json.loads(lock.read_text()) if lock.exists() else None
        assert holder and holder["pid"] == first.pid, (
            f"the first run (process {first.pid}) does not hold the lock: {holder}"
        )
        for workdir, where in ((other, f"from the working directory {tmp_path}"), (tmp_path, "from this same working")):
            result = run_workflow(workdir, config=config, check=False)
            output = result.stdout + result.stderr
            assert result.returncode != 0
            assert "another brightflow run is writing this output folder" in output and where in output, output[-1500:]
            assert f"process {first.pid}" in output
        # the refusals came while the first run ran and held the folder
        assert first.poll() is None and json.loads(lock.read_text())["pid"] == first.pid
    # released: the first run finished (status 0, checked by held_run) and gave the lock back
    assert not lock.exists()
    run_workflow(other, config=config)  # and the folder is free again


#: A process id no Linux kernel hands out (above PID_MAX_LIMIT, 2**22): never a live process, unlike the id
#: of a process that has ended, which another process may be given meanwhile (pid_max is often 32768).
NEVER_A_PID = 2**22 + 1


def test_a_lock_left_by_a_dead_run_is_taken_over(run_workflow, tmp_path, two_stacks):
    results = tmp_path / "results"
    (results / ".brightflow").mkdir(parents=True)
    record = {"pid": NEVER_A_PID, "host": socket.gethostname(), "directory": "/nowhere", "started": "yesterday"}
    (results / ".brightflow" / "run.lock").write_text(json.dumps(record))
    run_workflow(tmp_path, config={"input_dir": two_stacks})
    assert not (results / ".brightflow" / "run.lock").exists()


# --- determinism ---------------------------------------------------------------------------------------


def _files(folder):
    skipped = {"logs", "benchmarks"}  # run records: each job's log and timings
    return sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and not skipped & set(path.relative_to(folder).parts)
    )


def test_outputs_are_byte_identical_across_reruns_cores_and_output_folders(run_workflow, tmp_path, two_stacks):
    """Everything but settings.json's "written" time stamp and run_summary.txt's duration and folder (logs and
    benchmark timings aside)."""
    run_workflow(tmp_path, config={"input_dir": two_stacks, "output_dir": "one"}, cores=1)
    run_workflow(tmp_path, config={"input_dir": two_stacks, "output_dir": "two"}, cores=2)
    first = {name: (tmp_path / "one" / name).read_bytes() for name in _files(tmp_path / "one")}
    run_workflow(tmp_path, "--forceall", config={"input_dir": two_stacks, "output_dir": "one"}, cores=2)
    assert _files(tmp_path / "one") == _files(tmp_path / "two") == sorted(first)
    assert len(first) > 70
    for name in first:
        again, other = (tmp_path / "one" / name).read_bytes(), (tmp_path / "two" / name).read_bytes()
        if name.endswith("settings.json"):
            first_record, again, other = (
                {k: v for k, v in json.loads(text).items() if k != "written"} for text in (first[name], again, other)
            )
            assert first_record == again == other, name
        elif name == "run_summary.txt":  # the run's duration, and where its results are
            first_text, again, other = (
                re.sub(r" in \d+ (min \d+ )?s\. Results: \S+", "", text.decode())
                for text in (first[name], again, other)
            )
            assert first_text == again == other, name
        else:
            assert first[name] == again == other, name
