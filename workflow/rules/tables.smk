# Per-pixel and per-cell tables, and the record of every setting used.


rule tables:
    input:
        maps=expand(f"{OUT}/{{{{experiment}}}}/{{name}}.npy", name=MAP_NAMES),
        labels=segmentation_file("analysis_labels.tif"),
        seg=segmentation_file("segmentation_image_seg.npy"),
    output:
        pixels=f"{OUT}/{{experiment}}/brightness_intensity_values.csv",
        cells=f"{OUT}/{{experiment}}/average_values_in_roi.csv",
    params:
        detector=config["nb"]["detector"],
        gamma=config["nb"]["gamma"],
        # a numeric monomer brightness gives the per-cell CSV its oligomeric state; a reference
        # experiment is resolved by the aggregate rule alone (changing it reruns only that rule)
        monomer_brightness=(
            config["nb"].get("monomer_brightness")
            if isinstance(config["nb"].get("monomer_brightness"), (int, float))
            else None
        ),
    resources:
        mem_mb=light_mem_mb,
        runtime=light_runtime,
        **slurm_placement(),
    log:
        f"{LOG_DIR}/{{experiment}}/tables.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../../scripts/tables.py"


def _settings_recorded():
    """The config an experiment's settings.json records: a reference experiment for the monomer
    brightness is a folder-level choice (recorded in the folder CSV), left out so that changing it
    reruns only the aggregate."""
    # not where the jobs ran (slurm: account and partitions), which changes no result
    recorded = {key: value for key, value in config.items() if key not in ("samples", "slurm")}
    if isinstance(config["nb"].get("monomer_brightness"), str):
        recorded["nb"] = {k: v for k, v in config["nb"].items() if k != "monomer_brightness"}
    return recorded


SETTINGS_RECORDED = _settings_recorded()


rule settings:
    input:
        stack=stack_path,
        model=f"{OUT}/{{experiment}}/bleach_correction.json",
        seg=segmentation_file("segmentation_image_seg.npy"),
        seg_record=segmentation_file("segmentation.json"),
        threshold=f"{OUT}/{{experiment}}/nb_threshold.json",
    output:
        f"{OUT}/{{experiment}}/settings.json",
    params:
        config=SETTINGS_RECORDED,
        # not the sheet's reference column: the monomer reference is the aggregate's alone
        sample=lambda wildcards: SAMPLES.loc[experiment_of(wildcards.experiment), ["experiment", "path", "mask"]].to_dict(),
        channel=unit_channel,
        axes=config["input"]["axes"],
    resources:
        mem_mb=stack_mem_mb,
        runtime=stack_runtime,
        **slurm_placement(),
    log:
        f"{LOG_DIR}/{{experiment}}/settings.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../../scripts/settings.py"
