# The brightness explorer: an interactive page linking the B x I plot of the cell pixels to the image.


rule brightness_explorer:
    input:
        maps=rules.nb_maps.output.npy,
        labels=segmentation_file(rules.analysis_mask.output.labels),
        # the projection carries the recording's pixel size (the image's axes)
        image=segmentation_file(rules.projection.output.image),
        # each cell's ratio-of-means brightness and number, shown in the page's list of cells
        cells=rules.tables.output.cells,
    output:
        page=reported(
            f"{OUT}/{{unit}}/brightness_explorer.html",
            "explorer",
            "brightness explorer (brightness_explorer.html)",
        ),
    log:
        f"{LOG_DIR}/{{unit}}/brightness_explorer.log",
    benchmark:
        f"{BENCH_DIR}/{{unit}}/brightness_explorer.tsv"
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
