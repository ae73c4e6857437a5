# Every experiment's per-cell table in one folder-level CSV, with the oligomeric state when a
# monomer brightness is configured, and the folder summary figure. The monomer reference is
# resolved here (not in the per-experiment rules), so changing it reruns only this rule.


def _monomer_setting():
    """nb.monomer_brightness: None, a positive number, or the name of a reference experiment, which
    the sample sheet's `reference` column can give instead (both must then agree)."""
    setting = config["nb"].get("monomer_brightness")
    marked = SAMPLES.loc[SAMPLES["reference"].astype(bool), "experiment"].tolist()
    if len(marked) > 1:
        raise WorkflowError(
            f"sample sheet {config['samples']}: the 'reference' column marks {len(marked)} experiments "
            f"({', '.join(marked)}); mark only the one monomer reference experiment."
        )
    if marked and marked[0] in SEGMENTATION_CHANNELS:
        raise WorkflowError(
            f"sample sheet {config['samples']}: the reference experiment {marked[0]!r} has several channels: "
            f"name the monomer's channel in nb.monomer_brightness instead (e.g. {marked[0]}/ch1) and clear the mark."
        )
    if marked:
        if setting is None:
            return marked[0]
        if setting != marked[0]:
            raise WorkflowError(
                f"nb.monomer_brightness is {setting!r} but the sample sheet {config['samples']} marks "
                f"{marked[0]!r} as the monomer reference: keep one of the two (or make them name the same experiment)."
            )
    if setting is None or isinstance(setting, (int, float)):
        return setting
    if setting not in UNITS:
        raise WorkflowError(
            f"nb.monomer_brightness is {setting!r}, which is neither a number nor one of the experiments "
            f"({', '.join(UNITS)}; a channel of a multi-channel stack is experiment/ch<c>). Give the monomer's brightness (photons per molecule per frame) "
            "or the name of the experiment whose cells express the monomeric fluorophore."
        )
    return str(setting)


MONOMER_BRIGHTNESS = _monomer_setting()


rule aggregate:
    input:
        expand(f"{OUT}/{{experiment}}/average_values_in_roi.csv", experiment=list(UNITS)),
    output:
        table=f"{OUT}/Folder_average_values_in_roi.csv",
        figure=f"{OUT}/Folder_brightness_summary.png",
    params:
        experiments=list(UNITS),
        # with a multi-channel stack the folder CSV gets a Channel column after Experiment
        channels={unit: channel for unit, (_, channel) in UNITS.items()} if MULTICHANNEL else None,
        monomer_brightness=MONOMER_BRIGHTNESS,
    resources:
        mem_mb=light_mem_mb,
        runtime=light_runtime,
        **slurm_placement(),
    log:
        f"{LOG_DIR}/aggregate.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../../scripts/aggregate.py"
