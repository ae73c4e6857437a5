# Every figure of a unit, in one process: the previews of the maps, the brightness-intensity plot and
# the bleach-correction figure.


rule figures:
    input:
        maps=rules.nb_maps.output.npy,
        labels=segmentation_file(rules.analysis_mask.output.labels),
        # the projection carries the recording's pixel size (axes and scale bars)
        image=segmentation_file(rules.projection.output.image),
        model=rules.bleach_correction.output.model,
        corrected_trace=rules.nb_maps.output.corrected_trace,
    output:
        previews=[reported(f"{OUT}/{{unit}}/{name}.png", "maps", map_label(name)) for name in MAP_NAMES],
        scatter=reported(
            f"{OUT}/{{unit}}/brightness_x_intensity.png",
            "brightness_x_intensity",
            "apparent brightness vs intensity (brightness_x_intensity.png)",
        ),
        bleach=reported(
            f"{OUT}/{{unit}}/Bleach_correction.png",
            "bleach_correction",
            "mean intensity per frame, before and after correction (Bleach_correction.png)",
        ),
    log:
        f"{LOG_DIR}/{{unit}}/figures.log",
    benchmark:
        f"{BENCH_DIR}/{{unit}}/figures.tsv"
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
