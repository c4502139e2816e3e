# The README's commands. `make run` runs the example pipeline, `make test` the quality gates (`make lint`)
# and then the whole test suite, `make unit` the unit tests alone; all first install what they need:
# Pipenv (into .tools/ when it is not on PATH), then the locked environment.
SHELL := /bin/bash
PYTHON ?= python3
PIPENV_VERSION := 2026.10.3

export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_IGNORE_VIRTUALENVS := 1
export PIPENV_VERBOSITY := -1
export PIPENV_NOSPIN := 1

SYSTEM_PIPENV := $(shell command -v pipenv 2>/dev/null)
PIPENV := $(if $(SYSTEM_PIPENV),$(SYSTEM_PIPENV),.tools/bin/pipenv)
# Commands run inside the project's environment, exactly as `pipenv run` would, without its start-up cost.
IN_ENV := PATH="$(CURDIR)/.venv/bin:$$PATH" VIRTUAL_ENV="$(CURDIR)/.venv"

.PHONY: setup setup-run run sync lint unit gpu-check test postgres bench launch goals report runtime serve register lab sweep sweep-launch verify lock-platforms
.DEFAULT_GOAL := run

# Two installs from the one lock: `setup-run` what running the pipeline needs, `setup` that plus the dev tools
# (pytest, pre-commit, JupyterLab, the S3 and Actions stand-ins) for the tests, goals and notebooks.
setup: .venv/.synced
setup-run: .venv/.synced-run

# The Pythons the lock is made for (Pipfile's [requires]); Pipenv looks for one of them on PATH.
SUPPORTED_PYTHONS := 3.11
CHECK_PYTHON = @for v in $(SUPPORTED_PYTHONS); do command -v python$$v >/dev/null && exit 0; done; \
	echo "error: reprolab needs Python $(SUPPORTED_PYTHONS) (python$(firstword $(SUPPORTED_PYTHONS)) on PATH); found $$($(PYTHON) --version 2>&1 || echo none)" >&2; exit 1

.tools/bin/pipenv:
	$(CHECK_PYTHON)
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet pipenv==$(PIPENV_VERSION)

.venv/.synced: Pipfile.lock | $(PIPENV)
	$(CHECK_PYTHON)
	$(PIPENV) sync --dev
	touch $@ .venv/.synced-run

.venv/.synced-run: Pipfile.lock | $(PIPENV)
	$(CHECK_PYTHON)
	[ .venv/.synced -nt Pipfile.lock ] || $(PIPENV) sync
	touch $@

# Stages journal their runs and a background sync puts them into MLflow; `run` and `sync` give it up to
# REPROLAB_SYNC_WAIT seconds, then name what is left (lab/docs/tracking.md).
REPROLAB_SYNC_WAIT ?= 30
run: setup-run  ## the example pipeline, end to end (only what changed)
	$(IN_ENV) dvc repro
	@$(IN_ENV) python -m lib.tracking.sync --wait $(REPROLAB_SYNC_WAIT) || true
	@echo
	$(IN_ENV) dvc metrics show
	@echo
	@echo "Results: metrics/*.json (dvc metrics show), plots: dvc plots show (opens dvc_plots/index.html),"
	@echo "runs: .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db  (then http://127.0.0.1:5000)"

lint: setup  ## every pre-commit hook on every file (hook environments come from PyPI on first use)
	$(IN_ENV) pre-commit run --all-files --show-diff-on-failure

# The report's test opens it in Debian's Chromium, installed here when missing (sudo when not root);
# CHROMIUM=<path> names another Chromium or Chrome binary for it.
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM
$(CHROMIUM):
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -q
	$(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

# Tests run in parallel, a worker per core. In `make test` each file stays on one worker (most of its tests
# wait on subprocesses), so a file's module-scoped servers and projects are set up once.
TEST_WORKERS ?= auto
unit: setup  ## the fast, hermetic unit tests only (pytest -m unittest), in parallel: seconds, not minutes
	$(IN_ENV) python -m pytest -m unittest -n $(TEST_WORKERS) -q

gpu-check: setup  ## on a GPU machine: can it run the build? What it found, a kernel, the CUDA tests, NCCL (runners.md)
	$(IN_ENV) python -m lib.training.gpu_check

# The integration tests run MLflow's server on PostgreSQL (tests/support.py): Debian's package, when missing.
postgres:  ## PostgreSQL's server programs for the tests: Debian's package, installed with apt-get when missing
	@command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  $(if $(filter 0,$(shell id -u)),,sudo) sh -c \
	  'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql'

test: setup lint $(CHROMIUM) postgres  ## the quality gates, then the whole test suite
	$(IN_ENV) python -m pytest -n $(TEST_WORKERS) --dist loadfile

report: setup-run  ## the run report, one HTML file that works offline; REV=, BASE=, OUT= (lab/docs/report.md)
	$(IN_ENV) python -m reports.run_report $(if $(REV),--rev "$(REV)") $(if $(BASE),--base "$(BASE)") $(if $(OUT),--out "$(OUT)")

# CI's lanes (lab/docs/testing.md, "CI"): `make lint` and `make unit` first, then these two. The workflow
# tests run the launch and sweep workflows under act, and `make launch`: CI runs them only when what they
# test changes, and nightly.
.PHONY: integration workflow-tests
WORKFLOW_TESTS := tests/experiments_workflow_test.py tests/sweep_workflow_test.py tests/launch_test.py
integration: setup $(CHROMIUM) postgres  ## the integration tests but the workflow tests, in parallel
	$(IN_ENV) python -m pytest -m integration -n $(TEST_WORKERS) --dist loadfile $(addprefix --ignore=,$(WORKFLOW_TESTS))

workflow-tests: setup postgres  ## the workflows run under act, and make launch
	$(IN_ENV) python -m pytest -m integration -n $(TEST_WORKERS) --dist loadfile $(WORKFLOW_TESTS)

goals: setup  ## the acceptance criteria in goals/goals.yaml (or GOALS=<file>) over the pipeline's outputs (after `make run`)
	$(IN_ENV) python -m pytest goals $(if $(GOALS),--goals-file $(GOALS))

runtime: setup-run  ## the selected model as a deployable runtime: dist/<name>-<version>-<short commit>/ and .zip
	$(IN_ENV) python -m runtimes.build --out dist

PORT ?= 5001
serve: setup-run  ## MLflow's scoring server for this checkout's runtime on http://127.0.0.1:$(PORT) (/ping, /invocations)
	model="$$($(IN_ENV) python -m runtimes.build --out dist --locate)" && \
	  $(IN_ENV) MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false mlflow models serve -m "$$model" --env-manager local \
	  --host 127.0.0.1 --port $(PORT)

register: setup goals runtime  ## once the goals pass: register the runtime in MLflow's Model Registry as @candidate
	$(IN_ENV) python -m runtimes.register --out dist

lab: setup  ## JupyterLab for lab/analysis, with the repository on PYTHONPATH so notebooks import lib
	$(IN_ENV) PYTHONPATH="$(CURDIR)" jupyter lab

.PHONY: tune adopt-tuned
TRIALS ?=
tune: setup-run  ## Optuna search for the dense network (tune_dnn_pytorch in params.yaml), after prepare_data
	$(IN_ENV) python -m sweeps.tune --params params.yaml $(if $(TRIALS),--trials $(TRIALS))

adopt-tuned: setup-run  ## write the best params of the last `make tune` into params.yaml's train_dnn_pytorch section
	$(IN_ENV) python -m sweeps.adopt tuning/train_dnn_pytorch.yaml --params params.yaml

launch:  ## tag HEAD run-$(NAME)-<time>-<commit> and push the tag: a GPU runner runs it (lab/docs/runners.md)
	@.ci/launch "$(NAME)"

SWEEP ?= sweeps/dnn_lr.yaml
JOBS ?= 2
sweep: setup-run  ## every point of $(SWEEP) as a DVC experiment, $(JOBS) at a time, then ranked (sweeps/README.md)
	$(IN_ENV) python -m sweeps.main run "$(SWEEP)" --jobs "$(JOBS)"

sweep-launch:  ## tag HEAD sweep-<name of $(SWEEP)>-<time>-<commit> and push it: one GPU job per point
	@.ci/launch_sweep "$(SWEEP)"

sync: setup-run  ## put every run journal not yet in MLflow into it (MLFLOW_TRACKING_URI, else the local store)
	$(IN_ENV) python -m lib.tracking.sync --wait $(REPROLAB_SYNC_WAIT)

bench: setup-run  ## pipeline speed against its floor, and growth with data size; writes lab/docs/benchmarks*.md
	$(IN_ENV) python -m benchmarks.pipeline_speed --repeats 3 --out lab/docs/benchmarks.md
	$(IN_ENV) python -m benchmarks.scale --rows 10000 100000 1000000 --repeats 3 --out lab/docs/benchmarks-scale.md
	$(IN_ENV) python -m benchmarks.dnn_throughput --rows 341 20000 --repeats 3 --epochs 5 --threads 1 --out lab/docs/benchmarks-dnn.md
	$(IN_ENV) python -m benchmarks.tracking_journal --repeats 3 --out lab/docs/benchmarks-tracking.md

# Reads the package indexes (PyPI, the PyTorch CPU index): needs the network, unlike the tests.
lock-platforms: setup-run  ## every locked package has a hashed wheel for each supported platform; ARGS=--all shows the gaps beyond
	$(IN_ENV) python .ci/lock_platforms.py $(ARGS)

verify: setup-run  ## re-run this commit's pipeline in a scratch copy and compare with its committed dvc.lock and metrics
	$(IN_ENV) python -m lib.reproduction
