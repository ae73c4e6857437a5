# Every figure of a unit, in one process: the previews of the maps, the brightness-intensity plot and
# the bleach-correction figure.


rule figures:
    input:
        maps=expand(f"{OUT}/{{{{experiment}}}}/{{name}}.npy", name=MAP_NAMES),
        labels=segmentation_file("analysis_labels.tif"),
        # the projection carries the recording's pixel size (axes and scale bars)
        image=segmentation_file("segmentation_image.tif"),
        model=f"{OUT}/{{experiment}}/bleach_correction.json",
        corrected_trace=f"{OUT}/{{experiment}}/bleach_corrected_trace.json",
    output:
        previews=[reported(f"{OUT}/{{experiment}}/{name}.png", "maps", map_label(name)) for name in MAP_NAMES],
        scatter=reported(
            f"{OUT}/{{experiment}}/brightness_x_intensity.png",
            "brightness_x_intensity",
            "apparent brightness vs intensity (brightness_x_intensity.png)",
        ),
        bleach=reported(
            f"{OUT}/{{experiment}}/Bleach_correction.png",
            "bleach_correction",
            "mean intensity per frame, before and after correction (Bleach_correction.png)",
        ),
    log:
        f"{LOG_DIR}/{{experiment}}/figures.log",
    benchmark:
        f"{BENCH_DIR}/{{experiment}}/figures.tsv"
    conda:
        "../../envs/core.yaml"
    resources:
        **slurm_placement(),
        mem_mb=light_mem_mb,
        runtime=light_runtime,
    params:
        # the apparent brightness of immobile molecules (the B x I plot's reference line) is S
        detector=config["nb"]["detector"],
        # named in Bleach_correction.png's report caption (the figure itself reads the model)
        bleach_correction=config["bleach_correction"],
        bleach_caveat=correction_named(config["bleach_correction"]["method"]).caveat,
    script:
        "../../scripts/figures.py"
