# Per-pixel and per-cell tables, and the record of every setting used.


rule tables:
    input:
        maps=expand(f"{OUT}/{{{{experiment}}}}/{{name}}.npy", name=MAP_NAMES),
        labels=segmentation_file("analysis_labels.tif"),
        seg=segmentation_file("segmentation_image_seg.npy"),
        # the Warnings column: doubtful samples per pixel, and the number of frames
        samples=f"{OUT}/{{experiment}}/sample_quality.npy",
        model=f"{OUT}/{{experiment}}/bleach_correction.json",
    output:
        pixels=f"{OUT}/{{experiment}}/brightness_intensity_values.csv",
        cells=reported(
            f"{OUT}/{{experiment}}/average_values_in_roi.csv", "cells", "per cell (average_values_in_roi.csv)"
        ),
    log:
        f"{LOG_DIR}/{{experiment}}/tables.log",
    benchmark:
        f"{BENCH_DIR}/{{experiment}}/tables.tsv"
    conda:
        "../../envs/core.yaml"
    resources:
        **slurm_placement(),
        mem_mb=light_mem_mb,
        runtime=light_runtime,
    params:
        detector=config["nb"]["detector"],
        gamma=config["nb"]["gamma"],
        # a numeric monomer brightness gives the per-cell CSV its oligomeric state; a reference
        # experiment is resolved by the aggregate rule alone (changing it reruns only that rule)
        monomer_brightness=NUMERIC_MONOMER_BRIGHTNESS,
        min_frames=config["quality"]["min_frames"],
        low_signal_sigmas=config["quality"]["low_signal_sigmas"],
    script:
        "../../scripts/tables.py"


rule settings:
    input:
        stack=stack_path,
        model=f"{OUT}/{{experiment}}/bleach_correction.json",
        seg=segmentation_file("segmentation_image_seg.npy"),
        seg_record=segmentation_file("segmentation.json"),
        threshold=f"{OUT}/{{experiment}}/nb_threshold.json",
    output:
        settings=f"{OUT}/{{experiment}}/settings.json",
    log:
        f"{LOG_DIR}/{{experiment}}/settings.log",
    benchmark:
        f"{BENCH_DIR}/{{experiment}}/settings.tsv"
    conda:
        "../../envs/core.yaml"
    resources:
        **slurm_placement(),
        mem_mb=stack_mem_mb,
        runtime=stack_runtime,
    params:
        # the series read and the stack's content: a new content reruns this step, a new modification
        # time alone does not, and a content that changes during the run fails the step
        source=stack_source,
        config=SETTINGS_RECORDED,
        sample=sample_record,
        channel=unit_channel,
        axes=config["input"]["axes"],
    script:
        "../../scripts/settings.py"
