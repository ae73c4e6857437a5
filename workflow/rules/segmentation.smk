# Segmentation of the projection into cells, the files made from the mask, and the analysis mask
# (optional erosion).
#
# The correction loop: the segmentation rule writes the cellpose-format _seg.npy (and
# segmentation.json, the record of how it was made). A user who corrects the masks in the cellpose
# GUI overwrites the _seg.npy: it is then newer than its inputs, so segmentation does not rerun,
# while every rule that reads it (segmentation_exports, analysis_mask, tables, settings) does,
# and so does everything downstream of those.
#
# Cellpose runs in a worker process in the environment of the model's generation: cellpose 3 in
# brightflow's, cellpose 4 with the overlay folder .cellpose4 first (brightflow.cellpose_worker).


rule segmentation:
    input:
        image=rules.projection.output.image,
        mask=existing_mask,
    output:
        seg=f"{OUT}/{{experiment}}/segmentation_image_seg.npy",
        record=f"{OUT}/{{experiment}}/segmentation.json",
    log:
        f"{LOG_DIR}/{{experiment}}/segmentation.log",
    benchmark:
        f"{BENCH_DIR}/{{experiment}}/segmentation.tsv"
    conda:
        # cellpose 3 or cellpose 4, by the model's generation (config_checks.smk)
        SEGMENTATION_CONDA_ENV
    threads: 4 if CELLPOSE_GENERATION else 1
    resources:
        # a GPU job goes to slurm.gpu_partition
        **slurm_placement(gpu=bool(SEGMENTATION_GPU_JOBS)),
        # 1 when cellpose will run on CUDA: `--resources gpu=1` runs one such job at a time
        gpu=SEGMENTATION_GPU_JOBS,
        mem_mb=segmentation_mem_mb,
        runtime=segmentation_runtime,
    params:
        method=config["segmentation"]["method"],
        # the content of an existing mask file (segmentation.method existing)
        mask_sha256=input_digest("mask"),
        # only the chosen method's settings: changing another method's keys reruns nothing. cellpose's:
        # the model's file and generation, the cellpose version that runs it, the precision setting
        threshold=SEGMENTATION_THRESHOLD,
        cellpose=SEGMENTATION_CELLPOSE,
    script:
        "../../scripts/segmentation.py"


rule segmentation_exports:
    input:
        seg=rules.segmentation.output.seg,
        # the projection carries the recording's pixel size, written into the label TIFF
        image=rules.projection.output.image,
    output:
        labels=f"{OUT}/{{experiment}}/segmentation_labels.tif",
        outlines=f"{OUT}/{{experiment}}/segmentation_image_cp_outlines.txt",
        rois=f"{OUT}/{{experiment}}/cell_rois.zip",
    log:
        f"{LOG_DIR}/{{experiment}}/segmentation_exports.log",
    benchmark:
        f"{BENCH_DIR}/{{experiment}}/segmentation_exports.tsv"
    conda:
        "../../envs/core.yaml"
    resources:
        **slurm_placement(),
        mem_mb=light_mem_mb,
        runtime=light_runtime,
    script:
        "../../scripts/segmentation_exports.py"


rule analysis_mask:
    input:
        seg=rules.segmentation.output.seg,
        image=rules.projection.output.image,
    output:
        labels=f"{OUT}/{{experiment}}/analysis_labels.tif",
        cellmask=reported(f"{OUT}/{{experiment}}/cellmask.png", "segmentation", "cell outlines and IDs (cellmask.png)"),
        eroded=reported(f"{OUT}/{{experiment}}/eroded_mask.png", "segmentation", "eroded outlines (eroded_mask.png)"),
    log:
        f"{LOG_DIR}/{{experiment}}/analysis_mask.log",
    benchmark:
        f"{BENCH_DIR}/{{experiment}}/analysis_mask.tsv"
    conda:
        "../../envs/core.yaml"
    resources:
        **slurm_placement(),
        mem_mb=light_mem_mb,
        runtime=light_runtime,
    params:
        erode_pixels=config["segmentation"]["erode_pixels"],
    script:
        "../../scripts/analysis_mask.py"
