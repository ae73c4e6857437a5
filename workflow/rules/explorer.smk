# The brightness explorer: an interactive page linking the B x I plot of the cell pixels to the image.


rule brightness_explorer:
    input:
        maps=expand(f"{OUT}/{{{{experiment}}}}/{{name}}.npy", name=MAP_NAMES),
        labels=segmentation_file("analysis_labels.tif"),
        # the projection carries the recording's pixel size (the image's axes)
        image=segmentation_file("segmentation_image.tif"),
    output:
        f"{OUT}/{{experiment}}/brightness_explorer.html",
    params:
        # the ratio-of-means readout and the reference line B = S
        detector=config["nb"]["detector"],
    # last among the jobs ready at once (figures, tables, settings): snakemake's scheduler otherwise
    # left the figures, the longest of them, to run alone at the end (README, "Exploring brightness
    # and intensity"); when nothing else is ready it runs at once
    priority: -1
    resources:
        mem_mb=light_mem_mb,
        runtime=light_runtime,
        **slurm_placement(),
    log:
        f"{LOG_DIR}/{{experiment}}/brightness_explorer.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../../scripts/brightness_explorer.py"
