# input_dir: demo -- simulate small recordings with known ground truth, so a fresh clone runs.


rule simulate_demo:
    output:
        stacks=expand(f"{DEMO_DIR}/{{name}}.tif", name=DEMO_EXPERIMENTS),
        truth_labels=expand(f"{DEMO_DIR}/{{name}}_truth_labels.tif", name=DEMO_EXPERIMENTS),
        truth=f"{DEMO_DIR}/truth_cells.csv",
    log:
        f"{LOG_DIR}/simulate_demo.log",
    benchmark:
        f"{BENCH_DIR}/simulate_demo.tsv"
    conda:
        "../../envs/core.yaml"
    resources:
        **slurm_placement(),
        mem_mb=light_mem_mb,
        runtime=light_runtime,
    script:
        "../../scripts/simulate_demo.py"


# The ground truth keyed by the tables' Cell ID: each segmented cell and the true cell it overlaps most.
rule demo_ground_truth:
    input:
        truth_cells=rules.simulate_demo.output.truth,
        truth_labels=rules.simulate_demo.output.truth_labels,
        # rule segmentation_exports comes later (segmentation.smk): its outputs are looked up when the DAG is built
        segmentations=lambda wildcards: expand(rules.segmentation_exports.output.labels, experiment=DEMO_EXPERIMENTS),
    output:
        truth=f"{DEMO_DIR}/ground_truth.csv",
    log:
        f"{LOG_DIR}/demo_ground_truth.log",
    benchmark:
        f"{BENCH_DIR}/demo_ground_truth.tsv"
    conda:
        "../../envs/core.yaml"
    resources:
        **slurm_placement(),
        mem_mb=light_mem_mb,
        runtime=light_runtime,
    script:
        "../../scripts/demo_ground_truth.py"
