# Previews of the maps and the brightness-intensity scatter.


rule figures:
    input:
        maps=expand(f"{OUT}/{{{{experiment}}}}/{{name}}.npy", name=MAP_NAMES),
        labels=segmentation_file("analysis_labels.tif"),
    output:
        previews=expand(f"{OUT}/{{{{experiment}}}}/{{name}}.png", name=MAP_NAMES),
        scatter=f"{OUT}/{{experiment}}/brightness_x_intensity.png",
    log:
        f"{LOG_DIR}/{{experiment}}/figures.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../../scripts/figures.py"
