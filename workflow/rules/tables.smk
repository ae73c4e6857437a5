# Per-pixel and per-cell tables, and the record of every setting used.


rule tables:
    input:
        maps=rules.nb_maps.output.npy,
        labels=segmentation_file(rules.analysis_mask.output.labels),
        seg=segmentation_file(rules.segmentation.output.seg),
        # the Warnings column: doubtful samples per pixel, and the number of frames
        samples=rules.bleach_correction.output.samples,
        model=rules.bleach_correction.output.model,
    output:
        pixels=f"{OUT}/{{unit}}/brightness_intensity_values.csv",
        cells=reported(f"{OUT}/{{unit}}/average_values_in_roi.csv", "cells", "per cell (average_values_in_roi.csv)"),
    log:
        f"{LOG_DIR}/{{unit}}/tables.log",
    benchmark:
        f"{BENCH_DIR}/{{unit}}/tables.tsv"
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
        model=rules.bleach_correction.output.model,
        seg=segmentation_file(rules.segmentation.output.seg),
        seg_record=segmentation_file(rules.segmentation.output.record),
        threshold=rules.nb_maps.output.threshold,
    output:
        settings=f"{OUT}/{{unit}}/settings.json",
    log:
        f"{LOG_DIR}/{{unit}}/settings.log",
    benchmark:
        f"{BENCH_DIR}/{{unit}}/settings.tsv"
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
