"""The workflow on a real SLURM cluster, through profiles/slurm.

Runs when a SLURM cluster answers ``sinfo`` (e.g. the single-node cluster of
``sudo ci/slurm-up.sh``, which .ci/run starts); skipped with the reason otherwise, so
``make test`` never needs system daemons. With ``BRIGHTFLOW_REQUIRE_SLURM=1`` (set by
.ci/run) the skip becomes a failure, so CI always exercises SLURM.

Every snakemake call runs under ``timeout -s KILL``: without job accounting the SLURM
executor can wait forever and ignores SIGTERM. Jobs left behind by a killed run are
cancelled by their job name prefix.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import uuid

import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers import REPO

pytestmark = pytest.mark.slurm

PROFILE = REPO / "profiles" / "slurm"  # absolute: the profile's partitions.yaml is found from it
DEMO = ("demo_monomer", "demo_mixed", "demo_tetramer")
MAP_NAMES = ("intensity", "variance", "apparent_brightness", "apparent_number", "brightness", "number")
#: a name prefix for this session's SLURM jobs, to cancel exactly those if a run is killed
JOB_PREFIX = "bftest" + uuid.uuid4().hex[:8]
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: (\S+?)\)\.?$", re.MULTILINE)


def _cluster_problem():
    """Why the SLURM test cannot run here, or None when a cluster answers."""
    if shutil.which("sinfo") is None:
        return "no SLURM cluster: sinfo is not installed (start a local one with: sudo ci/slurm-up.sh)"
    try:
        answer = subprocess.run(["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "no SLURM cluster: sinfo did not answer within 30 s"
    if answer.returncode != 0:
        last = (answer.stderr.strip().splitlines() or ["no message"])[-1]
        return f"no SLURM cluster answers sinfo ({last}); start one with: sudo ci/slurm-up.sh"
    if not re.search(r"^(idle|mix|alloc)", answer.stdout, re.MULTILINE):
        return f"the SLURM cluster has no usable node (sinfo states: {answer.stdout.split()})"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed in this Python (make venv installs it)"
    return None


@pytest.fixture(scope="module")
def cluster():
    problem = _cluster_problem()
    if problem:
        if os.environ.get("BRIGHTFLOW_REQUIRE_SLURM") == "1":
            pytest.fail(f"BRIGHTFLOW_REQUIRE_SLURM=1 but {problem}")
        pytest.skip(problem)
    yield
    # cancel whatever a killed run left in the queue (only this session's jobs)
    listing = subprocess.run(["squeue", "--noheader", "--format=%i %j"], capture_output=True, text=True)
    leftovers = [line.split()[0] for line in listing.stdout.splitlines() if JOB_PREFIX in line]
    if leftovers:
        subprocess.run(["scancel", *leftovers])


def snakemake(workdir, *args, limit=420):
    """Run snakemake on the repository's Snakefile in ``workdir`` under ``timeout -s KILL``."""
    command = [
        "timeout",
        "-s",
        "KILL",
        str(limit),
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        *map(str, args),
    ]
    env = dict(os.environ, MPLBACKEND="Agg")
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    result.output = result.stdout + result.stderr
    assert result.returncode != 137, (
        f"snakemake was killed after {limit} s: {' '.join(command)}\n{result.output[-6000:]}"
    )
    return result


def on_slurm(workdir, *args, limit=420):
    return snakemake(
        workdir,
        "--profile",
        PROFILE,
        # the test cluster starts jobs at once: look at them early (the default is 40 s)
        "--slurm-init-seconds-before-status-checks",
        3,
        "--slurm-jobname-prefix",
        JOB_PREFIX,
        *args,
        limit=limit,
    )


def scontrol(jobid):
    shown = subprocess.run(["scontrol", "show", "job", jobid], capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, f"scontrol does not know job {jobid}: {shown.stderr}"
    return dict(re.findall(r"(\w+)=(\S*)", shown.stdout))


def test_demo_on_slurm_gives_the_local_results_and_segmentation_gets_a_gpu(cluster, tmp_path):
    local, cluster_run = tmp_path / "local", tmp_path / "slurm"
    local.mkdir()
    cluster_run.mkdir()
    result = snakemake(local, "--cores", 2, "--config", "input_dir=demo")
    assert result.returncode == 0, result.output[-6000:]
    local_steps = int(re.search(r"(\d+) of \1 steps \(100%\) done", result.output).group(1))

    # The profile as shipped names no partition: every job goes to the cluster's default (main).
    # Segmentation here is the CPU threshold method; force a GPU request and the GPU partition,
    # as slurm.gpu_partition does for cellpose on CUDA (test_jobs_go_where_the_slurm_keys_say
    # checks that routing; --set-resources replaces the profile's empty set-resources block).
    result = on_slurm(
        cluster_run,
        "--config",
        "input_dir=demo",
        "--set-resources",
        "segmentation:gpu=1",
        "segmentation:slurm_partition=gpu",
    )
    assert result.returncode == 0, result.output[-8000:]

    # every result the science depends on is identical to the workstation run
    for experiment in DEMO:
        for name in MAP_NAMES:
            mine = np.load(cluster_run / "results" / experiment / f"{name}.npy")
            reference = np.load(local / "results" / experiment / f"{name}.npy")
            np.testing.assert_array_equal(mine, reference, err_msg=f"{experiment}/{name}.npy")
        for table in ("brightness_intensity_values.csv", "average_values_in_roi.csv"):
            assert (cluster_run / "results" / experiment / table).read_bytes() == (
                local / "results" / experiment / table
            ).read_bytes(), f"{experiment}/{table} differs"
        masks = [
            np.load(run / "results" / experiment / "segmentation_image_seg.npy", allow_pickle=True).item()["masks"]
            for run in (cluster_run, local)
        ]
        np.testing.assert_array_equal(masks[0], masks[1])
    folder = "results/Folder_average_values_in_roi.csv"
    assert (cluster_run / folder).read_bytes() == (local / folder).read_bytes()
    assert len(pd.read_csv(cluster_run / folder)) > 0

    # every job went through SLURM: one submission per job of the run's DAG, but for the jobs of the
    # Snakefile's localrules (all, aggregate, simulate_demo, demo_ground_truth: one each here), which run
    # in the main process; their counts come from the run's job-stats table
    local_rules = ("all", "aggregate", "simulate_demo", "demo_ground_truth", "missing_input")
    stats = result.output.split("Job stats:", 1)[1].split("\n\n", 1)[0]  # the first table, before any job ran
    local_jobs = sum(int(count) for count in re.findall(rf"^(?:{'|'.join(local_rules)})\s+(\d+)$", stats, re.MULTILINE))
    submitted = {log: jobid for jobid, log in SUBMITTED.findall(result.output)}
    assert local_jobs == 4, result.output[:4000]
    assert len(submitted) == local_steps - local_jobs and local_steps > 3 * 8, result.output[-4000:]
    assert not any(f"/rule_{rule}/" in log for log in submitted for rule in local_rules)

    # the segmentation jobs got a GPU on the gpu partition; the other jobs no GPU, on main
    for experiment in DEMO:
        jobid = next(j for log, j in submitted.items() if f"/rule_segmentation/{experiment}/" in log)
        job = scontrol(jobid)
        assert job["Partition"] == "gpu", job
        assert "gpu:1" in job.get("TresPerJob", "") or "gres/gpu=1" in job.get("AllocTRES", ""), job
        assert job["JobState"] == "COMPLETED", job
    for log, jobid in submitted.items():
        if "/rule_segmentation/" not in log:
            job = scontrol(jobid)
            assert job["Partition"] == "main", (log, job)
            assert "gpu" not in job.get("TresPerJob", "") + job.get("AllocTRES", ""), (log, job)


def test_a_failing_job_fails_the_workflow_and_names_its_slurm_log(cluster, tmp_path):
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    # a single 2D image instead of a time series: the projection job fails with a clear message
    tifffile.imwrite(stacks / "flat.tif", np.ones((32, 32), dtype=np.uint16))
    result = on_slurm(tmp_path, "--config", f"input_dir={stacks}", "--retries", 0, limit=240)

    assert result.returncode != 0, result.output[-4000:]
    logs = [log for _, log in SUBMITTED.findall(result.output) if "/rule_projection/flat/" in log]
    assert len(logs) == 1, result.output[-4000:]
    slurm_log = logs[0]
    # the failure report gives the job's SLURM log (and the rule's own log)
    report = result.output[result.output.index("Error in rule projection") :]
    assert slurm_log in report, report[:3000]
    assert "results/logs/flat/projection.log" in report
    # that log exists (failed jobs' logs are kept) and holds brightflow's explanation
    assert "is a single 2D image" in open(slurm_log).read()
    assert "is a single 2D image" in (tmp_path / "results/logs/flat/projection.log").read_text()


def _dry_run_resources(workdir, config_file, env=None):
    """rule name -> set of the resource strings of its jobs, from a dry run (no cluster needed)."""
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-n",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config_file),
    ]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BRIGHTFLOW_SLURM_")}
    result = subprocess.run(command, capture_output=True, text=True, env=environment | (env or {}), timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found = {}
    for rule, resources in re.findall(r"^rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", result.stdout, re.MULTILINE):
        if rule != "all":  # the target rule, no job
            found.setdefault(rule, set()).update(item.strip() for item in resources.split(","))
    return found


def test_jobs_go_where_the_slurm_keys_say(tmp_path):
    """slurm.account / partition / gpu_partition (or BRIGHTFLOW_SLURM_*) become every job's
    slurm_account / slurm_partition; a GPU job (cellpose on CUDA) goes to the GPU partition; with
    nothing set no job names a partition or an account (the cluster's defaults apply)."""
    import torch

    # a cellpose model must exist when the run starts: a file with a cellpose 3 network's keys
    model = tmp_path / "cellpose3_model"
    torch.save({"downsample.down.res_down_0.conv.conv_0.0.weight": torch.zeros(1)}, model)
    segmentation = {"method": "cellpose", "gpu": True, "model": str(model)}
    keys = tmp_path / "keys.yaml"
    keys.write_text(
        f"input_dir: demo\nsegmentation: {segmentation}\n"
        "slurm: {account: lab42, partition: cpu_p, gpu_partition: gpu_p}\n"
    )
    found = _dry_run_resources(tmp_path, keys)
    assert {"segmentation", "projection", "nb_maps", "figures", "aggregate"} <= set(found)
    for rule, resources in found.items():
        assert "slurm_account=lab42" in resources, rule
        partition = "gpu_p" if rule == "segmentation" else "cpu_p"
        assert f"slurm_partition={partition}" in resources, (rule, resources)
        assert any(item.startswith("runtime=") for item in resources) and any(
            item.startswith("mem_mb=") for item in resources
        ), (rule, resources)
    assert "gpu=1" in found["segmentation"]

    plain = tmp_path / "plain.yaml"
    plain.write_text(f"input_dir: demo\nsegmentation: {segmentation}\n")
    found = _dry_run_resources(
        tmp_path, plain, env={"BRIGHTFLOW_SLURM_PARTITION": "env_cpu", "BRIGHTFLOW_SLURM_GPU_PARTITION": "env_gpu"}
    )
    assert "slurm_partition=env_gpu" in found["segmentation"] and "slurm_partition=env_cpu" in found["nb_maps"]
    assert not any(item.startswith("slurm_account") for items in found.values() for item in items)

    found = _dry_run_resources(tmp_path, plain)
    assert not any(item.startswith(("slurm_account", "slurm_partition")) for items in found.values() for item in items)
