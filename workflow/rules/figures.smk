# Previews of the maps and the brightness-intensity plot.


rule figures:
    input:
        maps=expand(f"{OUT}/{{{{experiment}}}}/{{name}}.npy", name=MAP_NAMES),
        labels=segmentation_file("analysis_labels.tif"),
        # the projection carries the recording's pixel size (axes and scale bars)
        image=segmentation_file("segmentation_image.tif"),
    output:
        previews=[reported(f"{OUT}/{{experiment}}/{name}.png", "maps", map_label(name)) for name in MAP_NAMES],
        scatter=reported(
            f"{OUT}/{{experiment}}/brightness_x_intensity.png",
            "brightness_x_intensity",
            "apparent brightness vs intensity (brightness_x_intensity.png)",
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
    script:
        "../../scripts/figures.py"
