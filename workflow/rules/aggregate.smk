# Every experiment's per-cell table in one folder-level CSV, with the oligomeric state when a
# monomer brightness is configured, and the folder summary figure. The monomer reference is
# resolved here (not in the per-experiment rules), so changing it reruns only this rule.


rule aggregate:
    input:
        cells=expand(rules.tables.output.cells, unit=list(UNITS)),
    output:
        table=reported(
            f"{OUT}/{FOLDER_OUTPUTS['table']}",
            "folder_table",
            "every cell of every experiment (Folder_average_values_in_roi.csv)",
            folder=True,
        ),
        figure=reported(
            f"{OUT}/{FOLDER_OUTPUTS['figure']}",
            "folder_summary",
            "per-cell values per experiment (Folder_brightness_summary.png)",
            folder=True,
        ),
    log:
        f"{LOG_DIR}/aggregate.log",
    benchmark:
        f"{BENCH_DIR}/aggregate.tsv"
    conda:
        "../../envs/core.yaml"
    resources:
        **slurm_placement(),
        mem_mb=light_mem_mb,
        runtime=light_runtime,
    params:
        experiments=list(UNITS),
        # with a multi-channel stack the folder CSV gets a Channel column after Experiment
        channels={unit: channel for unit, (_, channel) in UNITS.items()} if MULTICHANNEL else None,
        monomer_brightness=MONOMER_BRIGHTNESS,
        # the brightness's unit on the figure (counts, or photons with an analog detector described)
        detector=config["nb"]["detector"],
    script:
        "../../scripts/aggregate.py"
