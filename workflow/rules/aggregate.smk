# Every experiment's per-cell table in one folder-level CSV.


rule aggregate:
    input:
        expand(f"{OUT}/{{experiment}}/average_values_in_roi.csv", experiment=EXPERIMENTS),
    output:
        f"{OUT}/Folder_average_values_in_roi.csv",
    params:
        experiments=EXPERIMENTS,
    log:
        f"{LOG_DIR}/aggregate.log",
    conda:
        "../../envs/core.yaml"
    script:
        "../../scripts/aggregate.py"
