# Segmentation of the projection into cells, then the analysis mask (optional erosion).
#
# The segmentation's only output is the cellpose-format _seg.npy. A user who corrects it in the
# cellpose GUI overwrites that file: it is then newer than its inputs, so segmentation does not
# rerun, while every rule downstream of it does.


rule segmentation:
    input:
        image=f"{OUT}/{{experiment}}/segmentation_image.tif",
        mask=existing_mask,
    output:
        f"{OUT}/{{experiment}}/segmentation_image_seg.npy",
    params:
        method=config["segmentation"]["method"],
        threshold=config["segmentation"].get("threshold", {}),
    resources:
        gpu=segmentation_gpus,
        mem_mb=segmentation_mem_mb,
    log:
        f"{LOG_DIR}/{{experiment}}/segmentation.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../../scripts/segmentation.py"


rule analysis_mask:
    input:
        seg=f"{OUT}/{{experiment}}/segmentation_image_seg.npy",
        image=f"{OUT}/{{experiment}}/segmentation_image.tif",
    output:
        labels=f"{OUT}/{{experiment}}/analysis_labels.tif",
        cellmask=f"{OUT}/{{experiment}}/cellmask.png",
        eroded=f"{OUT}/{{experiment}}/eroded_mask.png",
    params:
        erode_pixels=config["segmentation"]["erode_pixels"],
    log:
        f"{LOG_DIR}/{{experiment}}/analysis_mask.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../../scripts/analysis_mask.py"
