# brightflow: the two set-up commands of the README.
#   make demo   creates .venv (pinned), then runs the workflow on the simulated demo data
#   make test   creates .venv (pinned), checks the code (make lint), then runs the test suite and the
#               docstrings' examples (doctests)
#   make lint   ruff (checks and formatting) on the Python, snakefmt on the Snakefile and rules, snakemake --lint
#   make cellpose-gui / make cellpose4-gui   the cellpose 3 / cellpose 4 GUI, to correct masks
#   make report after a run (make demo, or your own: pass its options in RUN_ARGS), Snakemake's
#               report of it: results/report.html, or REPORT=path.zip for a zipped folder
PYTHON ?= python3.11
VENV   ?= .venv
CORES  ?= 2
BIN     = $(VENV)/bin
PIP_FLAGS ?= --disable-pip-version-check --no-input
REPORT ?= results/report.html
RUN_ARGS ?=
# Cellpose 4's overlay: cellpose 4, segment_anything and torchvision alone, in a folder of the
# checkout; its worker takes everything else from $(VENV). The workflow looks for it here.
CELLPOSE4 = .cellpose4

.PHONY: venv demo report lint test clean-demo cellpose-gui cellpose4-gui

venv: $(VENV)/.brightflow-installed $(CELLPOSE4)/.installed

$(VENV)/.brightflow-installed: requirements.txt requirements-nodeps.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) -q -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install $(PIP_FLAGS) -q --no-deps -r requirements-nodeps.txt -c constraints.txt
	$(BIN)/python -m pip install $(PIP_FLAGS) -q --no-deps --no-build-isolation -e .
	touch $@

# The overlay is made whole in a scratch folder, then moved into place: an interrupted install
# leaves no half overlay behind (and pip --target would not replace an existing one).
$(CELLPOSE4)/.installed: requirements-cellpose4.txt | $(VENV)/.brightflow-installed
	rm -rf $(CELLPOSE4).tmp
	$(BIN)/python -m pip install $(PIP_FLAGS) -q --no-deps --target $(CELLPOSE4).tmp -r requirements-cellpose4.txt
	rm -rf $(CELLPOSE4)
	mv $(CELLPOSE4).tmp $(CELLPOSE4)
	touch $@

cellpose-gui: venv
	$(BIN)/python -s -m brightflow.cellpose_adapter gui

cellpose4-gui: venv
	PYTHONPATH=$(CELLPOSE4) $(BIN)/python -s -m brightflow.cellpose_adapter gui

demo: venv
	$(BIN)/snakemake --cores $(CORES) --config input_dir=demo

report: venv
	$(BIN)/snakemake --report $(REPORT) $(RUN_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --config input_dir=demo

test: lint
	$(BIN)/python -m pytest -v -rs --doctest-modules brightflow tests

clean-demo:
	rm -rf results/demo_input results/demo_*
