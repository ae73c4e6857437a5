# The per-pixel N&B maps, in one streaming pass over the (corrected) frames.


rule nb_maps:
    input:
        stack=stack_path,
        model=f"{OUT}/{{experiment}}/bleach_correction.json",
        swaps=f"{OUT}/{{experiment}}/bleach_correction_swaps.npy",
        labels=f"{OUT}/{{experiment}}/analysis_labels.tif",
    output:
        maps=expand(f"{OUT}/{{{{experiment}}}}/{{name}}.{{ext}}", name=MAP_NAMES, ext=("npy", "tif")),
        threshold=f"{OUT}/{{experiment}}/nb_threshold.json",
    params:
        variance_ddof=config["nb"]["variance_ddof"],
        detector=config["nb"]["detector"],
        threshold=config["nb"]["threshold"],
        filter=config["nb"]["filter"],
    resources:
        mem_mb=stack_mem_mb,
    log:
        f"{LOG_DIR}/{{experiment}}/nb_maps.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../../scripts/nb_maps.py"
