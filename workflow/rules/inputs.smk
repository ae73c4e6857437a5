# An input file that is not there (a stack or mask named in a sample sheet, or a file removed from
# input_dir after the run started) fails its experiment's first job here, with the path and where it
# was named; the other experiments go on (with --keep-going) and the summary at the end lists it.


rule missing_input:
    output:
        report=f"{LOG_DIR}/{{experiment}}/missing_{{kind}}",
    log:
        f"{LOG_DIR}/{{experiment}}/missing_{{kind}}.log",
    wildcard_constraints:
        kind="path|mask",
    conda:
        "../../envs/core.yaml"
    params:
        missing=missing_input,
    script:
        "../../scripts/missing_input.py"
