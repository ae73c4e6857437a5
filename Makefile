# brightflow: the two set-up commands of the README.
#   make demo   creates .venv (pinned), then runs the workflow on the simulated demo data
#   make test   creates .venv (pinned), checks the code (make lint), then runs the test suite and the
#               docstrings' examples (doctests)
#   make lint   ruff on the Python, snakefmt on the Snakefile and rules, snakemake --lint
#   make report after a run (make demo, or your own: pass its options in RUN_ARGS), Snakemake's
#               report of it: results/report.html, or REPORT=path.zip for a zipped folder
PYTHON ?= python3.11
VENV   ?= .venv
CORES  ?= 2
BIN     = $(VENV)/bin
PIP_FLAGS ?= --disable-pip-version-check --no-input
REPORT ?= results/report.html
RUN_ARGS ?=

.PHONY: venv demo report lint test clean-demo

venv: $(VENV)/.brightflow-installed

$(VENV)/.brightflow-installed: requirements.txt requirements-nodeps.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) -q -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install $(PIP_FLAGS) -q --no-deps -r requirements-nodeps.txt -c constraints.txt
	$(BIN)/python -m pip install $(PIP_FLAGS) -q --no-deps --no-build-isolation -e .
	touch $@

demo: venv
	$(BIN)/snakemake --cores $(CORES) --config input_dir=demo

report: venv
	$(BIN)/snakemake --report $(REPORT) $(RUN_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --config input_dir=demo

test: lint
	$(BIN)/python -m pytest -v -rs --doctest-modules brightflow tests

clean-demo:
	rm -rf results/demo_input results/demo_*
