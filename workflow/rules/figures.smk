# Previews of the maps and the brightness-intensity plot.


rule figures:
    input:
        maps=expand(f"{OUT}/{{{{experiment}}}}/{{name}}.npy", name=MAP_NAMES),
        labels=segmentation_file("analysis_labels.tif"),
        # the projection carries the recording's pixel size (axes and scale bars)
        image=segmentation_file("segmentation_image.tif"),
    output:
        previews=expand(f"{OUT}/{{{{experiment}}}}/{{name}}.png", name=MAP_NAMES),
        scatter=f"{OUT}/{{experiment}}/brightness_x_intensity.png",
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
