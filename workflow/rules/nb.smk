# The per-pixel N&B maps, in one streaming pass over the (corrected) frames; the N&B time series
# and cross-correlated N&B when they are asked for.


rule nb_maps:
    input:
        stack=stack_path,
        model=rules.bleach_correction.output.model,
        swaps=rules.bleach_correction.output.swaps,
        labels=segmentation_file(rules.analysis_mask.output.labels),
        # pixels with NaN or Inf samples are left out of the maps
        samples=rules.bleach_correction.output.samples,
    output:
        npy=expand(f"{OUT}/{{{{unit}}}}/{{name}}.npy", name=MAP_NAMES),
        tif=expand(f"{OUT}/{{{{unit}}}}/{{name}}.tif", name=MAP_NAMES),
        threshold=f"{OUT}/{{unit}}/nb_threshold.json",
        # the per-frame mean of the corrected cell pixels, summed in the same pass
        corrected_trace=f"{OUT}/{{unit}}/bleach_corrected_trace.json",
    log:
        f"{LOG_DIR}/{{unit}}/nb_maps.log",
    benchmark:
        f"{BENCH_DIR}/{{unit}}/nb_maps.tsv"
    conda:
        "../../envs/core.yaml"
    # up to two threads sum and correct independent blocks of pixels (brightflow.parallel)
    threads: 2
    resources:
        **slurm_placement(),
        mem_mb=stack_mem_mb,
        runtime=stack_runtime,
    params:
        # the series read and the stack's content: a new content reruns this step, a new modification
        # time alone does not, and a content that changes during the run fails the step
        source=stack_source,
        variance_ddof=config["nb"]["variance_ddof"],
        detector=config["nb"]["detector"],
        threshold=NB_THRESHOLD,
        filter=config["nb"]["filter"],
        convention=config["nb"]["convention"],
        channel=unit_channel,
        axes=config["input"]["axes"],
    script:
        "../../scripts/nb_maps.py"


# N&B in windows of frames (nb.timeseries.frames_per_set); the rule exists only when it is set.
if TIMESERIES:

    rule nb_timeseries:
        input:
            stack=stack_path,
            model=rules.bleach_correction.output.model,
            swaps=rules.bleach_correction.output.swaps,
            labels=segmentation_file(rules.analysis_mask.output.labels),
            seg=segmentation_file(rules.segmentation.output.seg),
            # its NaN pixels are those nb.threshold excluded
            intensity=rules.nb_maps.output.npy[MAP_NAMES.index("intensity")],
        output:
            maps=expand(f"{OUT}/{{{{unit}}}}/timeseries/{{name}}.tif", name=TIMESERIES_MAP_NAMES),
            cells=reported(
                f"{OUT}/{{unit}}/timeseries_values_in_roi.csv",
                "timeseries_table",
                "per window and cell (timeseries_values_in_roi.csv)",
            ),
            figure=reported(
                f"{OUT}/{{unit}}/Brightness_timeseries.png",
                "timeseries_figure",
                "brightness per cell over time (Brightness_timeseries.png)",
            ),
        log:
            f"{LOG_DIR}/{{unit}}/nb_timeseries.log",
        benchmark:
            f"{BENCH_DIR}/{{unit}}/nb_timeseries.tsv"
        conda:
            "../../envs/core.yaml"
        # up to two threads sum and correct independent blocks of pixels (brightflow.parallel)
        threads: 2
        resources:
            **slurm_placement(),
            mem_mb=timeseries_mem_mb,
            runtime=stack_runtime,
        params:
            # the series read and the stack's content: a new content reruns this step, a new modification
            # time alone does not, and a content that changes during the run fails the step
            source=stack_source,
            frames_per_set=TIMESERIES["frames_per_set"],
            overlap=TIMESERIES["overlap"],
            variance_ddof=config["nb"]["variance_ddof"],
            detector=config["nb"]["detector"],
            gamma=config["nb"]["gamma"],
            filter=config["nb"]["filter"],
            convention=config["nb"]["convention"],
            channel=unit_channel,
            axes=config["input"]["axes"],
        script:
            "../../scripts/nb_timeseries.py"


# Cross-correlated N&B of two channels of every multi-channel stack (nb.cross_channels).
if CROSS_CHANNELS:

    rule nb_cross:
        input:
            stack=stack_path,
            models=cross_channel_files(rules.bleach_correction.output.model),
            swaps=cross_channel_files(rules.bleach_correction.output.swaps),
            # their NaN pixels are those nb.threshold excluded in each channel
            intensities=cross_channel_files(rules.nb_maps.output.npy[MAP_NAMES.index("intensity")]),
            labels=rules.analysis_mask.output.labels,
            seg=rules.segmentation.output.seg,
        output:
            npy=expand(f"{OUT}/{{{{experiment}}}}/{CROSS_FOLDER}/{{name}}.npy", name=CROSS_MAP_NAMES),
            tif=expand(f"{OUT}/{{{{experiment}}}}/{CROSS_FOLDER}/{{name}}.tif", name=CROSS_MAP_NAMES),
            png=[
                reported(f"{OUT}/{{experiment}}/{CROSS_FOLDER}/{name}.png", "cross_maps", map_label(name))
                for name in CROSS_MAP_NAMES
            ],
            table=reported(
                f"{OUT}/{{experiment}}/{CROSS_FOLDER}/cross_values_in_roi.csv",
                "cross_table",
                "per cell (cross_values_in_roi.csv)",
            ),
        log:
            f"{LOG_DIR}/{{experiment}}/nb_cross.log",
        benchmark:
            f"{BENCH_DIR}/{{experiment}}/nb_cross.tsv"
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
            channels=CROSS_CHANNELS,
            axes=config["input"]["axes"],
            variance_ddof=config["nb"]["variance_ddof"],
            detector=config["nb"]["detector"],
            filter=config["nb"]["filter"],
            convention=config["nb"]["convention"],
        script:
            "../../scripts/nb_cross.py"
