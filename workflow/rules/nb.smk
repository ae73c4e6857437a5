# The per-pixel N&B maps, in one streaming pass over the (corrected) frames.


rule nb_maps:
    input:
        stack=stack_path,
        model=f"{OUT}/{{experiment}}/bleach_correction.json",
    output:
        expand(f"{OUT}/{{{{experiment}}}}/{{name}}.{{ext}}", name=MAP_NAMES, ext=("npy", "tif")),
    params:
        # the per-cell settings (gamma, monomer brightness) are not the maps': changing them must
        # not recompute the maps
        nb={key: value for key, value in config["nb"].items() if key not in ("gamma", "monomer_brightness")},
    log:
        f"{LOG_DIR}/{{experiment}}/nb_maps.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../../scripts/nb_maps.py"
