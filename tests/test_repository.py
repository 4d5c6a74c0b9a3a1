"""What a newcomer meets first: clean notebooks with the same Colab set-up, one repository address, no data committed."""
import re
import subprocess

import nbformat
import pytest

from helpers import REPO_URL
from helpers.cache import REPO_ROOT
from helpers.run_notebooks import course_notebooks

SETUP_CELL = f"""# Set-up. In Colab: clone the course repository and install its requirements. Locally: nothing to do.
import os, sys
if "google.colab" in sys.modules and not os.path.isdir("helpers"):
    !git clone --depth 1 {REPO_URL}.git
    %cd {REPO_URL.rsplit("/", 1)[-1]}
    !pip install -q -r requirements.txt"""


def test_the_three_course_notebooks_are_there():
    assert [p.name for p in course_notebooks()] == [
        "1_pipelines.ipynb", "2_clustering.ipynb", "3_labeling_retrieval.ipynb"]


@pytest.mark.parametrize("path", course_notebooks(), ids=lambda p: p.name)
def test_notebook_is_committed_clean_and_explained(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    assert notebook.cells[code[0]].source == SETUP_CELL
    for i in code:
        cell = notebook.cells[i]
        assert cell.outputs == [] and cell.execution_count is None, f"cell {i} was committed with outputs"
        assert i > 0 and notebook.cells[i - 1].cell_type == "markdown", f"code cell {i} has no markdown before it"
    tasks = [c.source for c in notebook.cells if c.cell_type == "markdown" and "TASK" in c.source]
    assert len(tasks) >= 3 and all("**TASK" in source for source in tasks)  # TASKs are bold


def test_readme_badges_point_at_the_one_repository_address():
    readme = (REPO_ROOT / "README.md").read_text()
    slug = REPO_URL.removeprefix("https://github.com/")
    for path in course_notebooks():
        assert f"https://colab.research.google.com/github/{slug}/blob/main/{path.name}" in readme
    assert f"git clone --depth 1 {REPO_URL}.git" in readme
    others = set(re.findall(r"github\.com/([\w.-]+/[\w.-]+?)(?:\.git|/blob)", readme)) - {slug}
    assert not others, f"README names another repository address: {others}"


def test_course_data_and_weights_are_not_committed():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    heavy = [f for f in tracked if re.search(r"\.(pdf|gguf|safetensors|onnx|npy)$|science_of_science\.csv$", f)]
    assert heavy == []
