#!/usr/bin/env python
"""Peak memory of each rule on one recording in each microscope format (docs/input_formats.md).

Takes run_benchmark.py's simulated ``T x 512 x 512`` uint16 recording (cached under --workdir),
writes it as a CZI (pylibCZIrw, one scene), an OME-Zarr (zarr, NGFF 0.4, one frame per chunk) and
an OME-TIFF of two series (a 3-frame preview, then the recording), and runs the workflow on each
(sample sheet with the cells' mask, ``segmentation.method: existing``, the given bleach method, one
job at a time). Each rule's peak memory is its own process's ``VmHWM`` (rule_probe/sitecustomize.py,
as ``run_benchmark.py --memory-rules`` measures it). Prints a markdown table and writes it, with
the JSON, to benchmarks/results/formats-memory-T<frames>.{md,json}.

    python benchmarks/formats_memory.py --frames 1000 --bleach boxcar
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import run_benchmark as bench  # noqa: E402
from format_writers import write_ome_zarr  # noqa: E402

from brightflow.io import recording_bytes  # noqa: E402

RULES = ("projection", "bleach_correction", "nb_maps", "settings")


def _frames(stack, chunk=50):
    import tifffile

    with tifffile.TiffFile(stack) as tif:
        series = tif.series[0]
        for start in range(0, series.shape[0], chunk):
            yield tif.asarray(key=range(start, min(start + chunk, series.shape[0])))


def write_formats(stack, folder):
    """The recording as CZI, OME-Zarr and OME-TIFF (each written in blocks of frames by its own library)."""
    import tifffile
    import zarr
    from pylibCZIrw import czi as pyczi

    folder.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffFile(stack) as tif:
        shape = tif.series[0].shape
    czi = folder / "recording.czi"
    if not czi.exists():
        bench.log(f"writing {czi}")
        partial = czi.with_name("recording.partial.czi")
        with pyczi.create_czi(str(partial), exist_ok=True) as out:
            t = 0
            for block in _frames(stack):
                for frame in block:
                    out.write(data=frame[..., None], plane={"T": t, "C": 0, "Z": 0}, scene=0)
                    t += 1
            out.write_metadata(document_name="recording", channel_names={0: "GFP"}, scale_x=1e-7, scale_y=1e-7)
        partial.rename(czi)
    store = folder / "recording.ome.zarr"
    if not store.exists():
        bench.log(f"writing {store}")
        partial = store.with_name("recording.partial.ome.zarr")
        write_ome_zarr(partial, np.zeros((3,) + shape[1:], np.uint16))  # the metadata, then the real array
        group = zarr.open_group(str(partial), mode="r+")
        del group["0"]
        array = group.create_array(
            "0", shape=(shape[0], 1, 1) + shape[1:], dtype=np.uint16, chunks=(1, 1, 1) + shape[1:]
        )
        t = 0
        for block in _frames(stack):
            array[t : t + len(block), 0, 0] = block
            t += len(block)
        partial.rename(store)
    ome = folder / "recording.ome.tif"
    if not ome.exists():
        bench.log(f"writing {ome}")
        preview = next(_frames(stack, 3))
        partial = ome.with_name("recording.partial.ome.tif")
        with tifffile.TiffWriter(partial, ome=True, bigtiff=True) as tif:
            tif.write(preview, metadata={"axes": "TYX", "Name": "preview"}, photometric="minisblack")
            tif.write(
                _frames_one_by_one(stack),
                shape=shape,
                dtype=np.uint16,
                photometric="minisblack",
                metadata={"axes": "TYX", "Name": "recording"},
            )
        partial.rename(ome)
    return {"CZI": (czi, ""), "OME-Zarr": (store, ""), "OME-TIFF (series 1)": (ome, "1"), "TIFF": (stack, "")}


def _frames_one_by_one(stack):
    for block in _frames(stack):
        yield from block


def run(workdir, name, path, series, mask, bleach):
    run_dir = workdir / f"run_{name.split()[0].replace('-', '_')}_{bleach}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    (run_dir / "samples.tsv").write_text(f"experiment\tpath\tseries\tmask\nx\t{path}\t{series}\t{mask}\n")
    (run_dir / "config.yaml").write_text(
        json.dumps(
            {
                "samples": str(run_dir / "samples.tsv"),
                "output_dir": "results",
                "segmentation": {"method": "existing"},
                "bleach_correction": {"method": bleach},
            }
        )
    )
    records = run_dir / "rules.jsonl"
    env = bench.brightflow_env()
    env["BRIGHTFLOW_BENCH_RULES"] = str(records)
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        bench.REPO / "Snakefile",
        "--directory",
        run_dir,
        "--cores",
        1,
        "--configfile",
        run_dir / "config.yaml",
    ]
    result = bench.timed(command, env=env, log_path=run_dir / "snakemake.out", timeout=3600)
    if result["returncode"] != 0:
        raise SystemExit(f"{name} failed:\n{(run_dir / 'snakemake.out').read_text()[-4000:]}")
    peaks = {}
    for line in records.read_text().splitlines():
        record = json.loads(line)
        peaks[record["script"]] = max(peaks.get(record["script"], 0), record["max_rss_mb"])
    return {"wall_s": result["wall_s"], "rules": peaks}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bleach", default="boxcar")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/brightflow-bench"))
    args = parser.parse_args(argv)
    stack, mask = bench.prepare_data(args.workdir, args.frames, args.seed)
    files = write_formats(stack, args.workdir / "formats" / f"T{args.frames}")
    report = {}
    for name, (path, series) in files.items():
        bench.log(f"{name}: {path}")
        report[name] = run(args.workdir, name, path, series, mask, args.bleach) | {
            "file_mb": round(recording_bytes(path) / 2**20)
        }
    lines = [
        f"Peak resident memory (VmHWM, MB) per rule, {args.frames} x 512 x 512 uint16, bleach "
        f"{args.bleach}, one job at a time",
        "",
        "| rule | " + " | ".join(f"{name} ({report[name]['file_mb']} MB)" for name in report) + " |",
        "|---|" + "---|" * len(report),
    ]
    for rule in RULES:
        lines.append(
            f"| {rule} | "
            + " | ".join(f"{report[name]['rules'].get(rule, float('nan')):.0f}" for name in report)
            + " |"
        )
    text = "\n".join(lines)
    print(text)
    out = bench.BENCH_DIR / "results" / f"formats-memory-T{args.frames}"
    out.with_suffix(".md").write_text(text + "\n")
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
