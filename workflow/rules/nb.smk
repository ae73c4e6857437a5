# The per-pixel N&B maps, in one streaming pass over the (corrected) frames; the N&B time series
# and cross-correlated N&B when they are asked for.


rule nb_maps:
    input:
        stack=stack_path,
        model=f"{OUT}/{{experiment}}/bleach_correction.json",
        swaps=f"{OUT}/{{experiment}}/bleach_correction_swaps.npy",
        labels=segmentation_file("analysis_labels.tif"),
        # pixels with NaN or Inf samples are left out of the maps
        samples=f"{OUT}/{{experiment}}/sample_quality.npy",
    output:
        npy=expand(f"{OUT}/{{{{experiment}}}}/{{name}}.npy", name=MAP_NAMES),
        tif=expand(f"{OUT}/{{{{experiment}}}}/{{name}}.tif", name=MAP_NAMES),
        threshold=f"{OUT}/{{experiment}}/nb_threshold.json",
        # the per-frame mean of the corrected cell pixels, summed in the same pass
        corrected_trace=f"{OUT}/{{experiment}}/bleach_corrected_trace.json",
    log:
        f"{LOG_DIR}/{{experiment}}/nb_maps.log",
    benchmark:
        f"{BENCH_DIR}/{{experiment}}/nb_maps.tsv"
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
            model=f"{OUT}/{{experiment}}/bleach_correction.json",
            swaps=f"{OUT}/{{experiment}}/bleach_correction_swaps.npy",
            labels=segmentation_file("analysis_labels.tif"),
            seg=segmentation_file("segmentation_image_seg.npy"),
            # its NaN pixels are those nb.threshold excluded
            intensity=f"{OUT}/{{experiment}}/intensity.npy",
        output:
            maps=expand(f"{OUT}/{{{{experiment}}}}/timeseries/{{name}}.tif", name=TIMESERIES_MAP_NAMES),
            cells=reported(
                f"{OUT}/{{experiment}}/timeseries_values_in_roi.csv",
                "timeseries_table",
                "per window and cell (timeseries_values_in_roi.csv)",
            ),
            figure=reported(
                f"{OUT}/{{experiment}}/Brightness_timeseries.png",
                "timeseries_figure",
                "brightness per cell over time (Brightness_timeseries.png)",
            ),
        log:
            f"{LOG_DIR}/{{experiment}}/nb_timeseries.log",
        benchmark:
            f"{BENCH_DIR}/{{experiment}}/nb_timeseries.tsv"
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
            models=[f"{OUT}/{{experiment}}/ch{c}/bleach_correction.json" for c in CROSS_CHANNELS],
            swaps=[f"{OUT}/{{experiment}}/ch{c}/bleach_correction_swaps.npy" for c in CROSS_CHANNELS],
            # their NaN pixels are those nb.threshold excluded in each channel
            intensities=[f"{OUT}/{{experiment}}/ch{c}/intensity.npy" for c in CROSS_CHANNELS],
            labels=f"{OUT}/{{experiment}}/analysis_labels.tif",
            seg=f"{OUT}/{{experiment}}/segmentation_image_seg.npy",
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
        wildcard_constraints:
            experiment="[^/]+",
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
