# The brightness explorer: an interactive page linking the B x I plot of the cell pixels to the image.


rule brightness_explorer:
    input:
        maps=expand(f"{OUT}/{{{{experiment}}}}/{{name}}.npy", name=MAP_NAMES),
        labels=segmentation_file("analysis_labels.tif"),
        # the projection carries the recording's pixel size (the image's axes)
        image=segmentation_file("segmentation_image.tif"),
        # each cell's ratio-of-means brightness and number, shown in the page's list of cells
        cells=f"{OUT}/{{experiment}}/average_values_in_roi.csv",
    output:
        page=reported(
            f"{OUT}/{{experiment}}/brightness_explorer.html",
            "explorer",
            "brightness explorer (brightness_explorer.html)",
        ),
    log:
        f"{LOG_DIR}/{{experiment}}/brightness_explorer.log",
    benchmark:
        f"{BENCH_DIR}/{{experiment}}/brightness_explorer.tsv"
    # started as soon as it can (after tables), beside the figures or the aggregate (benchmarks/README.md,
    # "Exploring brightness and intensity": cost)
    priority: 1
    conda:
        "../../envs/core.yaml"
    resources:
        **slurm_placement(),
        mem_mb=light_mem_mb,
        runtime=light_runtime,
    params:
        # the ratio-of-means readout and the reference line B = S
        detector=config["nb"]["detector"],
    script:
        "../../scripts/brightness_explorer.py"
