"""What a newcomer meets first: clean notebooks with the same Colab set-up, one repository address, no data committed."""
import json
import os
import re
import subprocess
import sys
import types

import nbformat
import pytest

from helpers import REPO_URL
from helpers.cache import REPO_ROOT
from tools.run_notebooks import course_notebooks


def setup_cell(path) -> str:
    notebook = nbformat.read(path, as_version=4)
    return next(cell.source for cell in notebook.cells if cell.cell_type == "code")


def test_the_three_course_notebooks_are_there():
    assert [p.name for p in course_notebooks()] == [
        "1_pipelines.ipynb", "2_clustering.ipynb", "3_labeling_retrieval.ipynb"]


@pytest.mark.parametrize("path", course_notebooks(), ids=lambda p: p.name)
def test_notebook_is_committed_clean_and_explained(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    ids = [cell.get("id") for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]]  # as committed, not as read
    assert all(ids) and len(set(ids)) == len(ids), "every cell needs its own id (nbformat 4.5): save it in Jupyter"
    code = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    assert notebook.cells[code[0]].source == setup_cell(course_notebooks()[0])  # one set-up cell for all
    assert f'REPO_URL = "{REPO_URL}"' in notebook.cells[code[0]].source
    for i in code:
        cell = notebook.cells[i]
        assert cell.outputs == [] and cell.execution_count is None, f"cell {i} was committed with outputs"
        assert i > 0 and notebook.cells[i - 1].cell_type == "markdown", f"code cell {i} has no markdown before it"
    heading = r"\*\*(?:Optional )?TASK[^*]*\*\*"  # TASKs are bold
    tasks = [c.source for c in notebook.cells if c.cell_type == "markdown" and re.search(heading, c.source)]
    headings = [h for source in tasks for h in re.findall(heading, source)]
    assert len(headings) >= 3
    for source in tasks:  # each TASK has a time budget, a hint and what you should see, folded away
        found = re.findall(heading, source)
        assert all("minute" in h for h in found), found
        assert source.count("<details><summary>") >= len(found) and "hint" in source.lower()
        assert source.lower().count("what you should see</summary>") == len(found), found


def test_readme_badges_point_at_the_one_repository_address():
    readme = (REPO_ROOT / "README.md").read_text()
    slug = REPO_URL.removeprefix("https://github.com/")
    for path in course_notebooks():
        assert f"https://colab.research.google.com/github/{slug}/blob/main/{path.name}" in readme
    assert setup_cell(course_notebooks()[0]) in readme  # the README shows the same set-up cell
    others = set(re.findall(r"github\.com/([\w.-]+/[\w.-]+?)(?:\.git|/blob)", readme)) - {slug}
    assert not others, f"README names another repository address: {others}"


def test_course_data_and_weights_are_not_committed():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    heavy = [f for f in tracked if re.search(r"\.(pdf|gguf|safetensors|onnx|npy)$|science_of_science\.csv$", f)]
    assert heavy == []


def _run_setup_cell(source: str, repo_url: str, workdir, monkeypatch):
    """Run the notebooks' set-up cell as Colab would (google.colab imported), from ``workdir``."""
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.chdir(workdir)
    exec(source.replace(f'REPO_URL = "{REPO_URL}"', f'REPO_URL = "{repo_url}"'), {})


def test_setup_cell_fails_loudly_when_the_clone_fails(tmp_path, monkeypatch):
    wrong = str(tmp_path / "no-such-repository")
    with pytest.raises(RuntimeError, match="could not clone .*no-such-repository") as error:
        _run_setup_cell(setup_cell(course_notebooks()[0]), wrong, tmp_path, monkeypatch)
    assert "make set-repo-url" in str(error.value) and "run this cell again" in str(error.value)
    assert list(tmp_path.iterdir()) == []  # a failed clone leaves nothing behind, not even its temporary folder


def test_setup_cell_never_deletes_a_folder_it_did_not_make(tmp_path, monkeypatch):
    """Issue 17 item 8: a LLM4SciSci/ folder without the course code may be the user's; it is left as it is."""
    mine = tmp_path / "LLM4SciSci"
    mine.mkdir()
    (mine / "my_scopus_export.csv").write_text("Title,Year\nMy paper,2024\n")
    source = tmp_path / "src" / "LLM4SciSci.git"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{REPO_ROOT}", str(source)], check=True)
    with pytest.raises(RuntimeError, match="holds no course code .*rename or move it"):
        _run_setup_cell(setup_cell(course_notebooks()[0]), str(source.with_suffix("")), tmp_path, monkeypatch)
    assert [p.name for p in mine.iterdir()] == ["my_scopus_export.csv"]
    assert (mine / "my_scopus_export.csv").read_text() == "Title,Year\nMy paper,2024\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LLM4SciSci", "src"]  # no clone was started


def test_setup_cell_clones_installs_and_recovers_after_a_restart(tmp_path, monkeypatch):
    """A local clone of this repository stands in for the address; pip meets an unknown package and says so."""
    source = tmp_path / "src" / "LLM4SciSci.git"  # the cell clones REPO_URL + ".git"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{REPO_ROOT}", str(source)], check=True)
    (source / "requirements.txt").write_text("llm4scisci-no-such-package-xyz==0.0.1\n")
    subprocess.run(["git", "-C", str(source), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-qam", "broken requirements"], check=True)
    colab = tmp_path / "content"
    colab.mkdir()
    (colab / "LLM4SciSci").mkdir()  # an empty folder: nothing in it to lose, so the clone takes its place
    cell = setup_cell(course_notebooks()[0])
    with pytest.raises(RuntimeError, match="pip could not install requirements.txt"):
        _run_setup_cell(cell, str(source.with_suffix("")), colab, monkeypatch)
    assert (colab / "LLM4SciSci" / "helpers" / "__init__.py").is_file()
    # After a restart the kernel starts in /content again; the clone is reused, not made twice.
    (source / "requirements.txt").write_text("")
    (colab / "LLM4SciSci" / "requirements.txt").write_text("# nothing to install\n")
    _run_setup_cell(cell, str(tmp_path / "gone" / "LLM4SciSci"), colab, monkeypatch)  # no clone attempted
    assert os.getcwd() == str(colab / "LLM4SciSci")


def _fake_python(tmp_path):
    """A ``python`` for setup_venv.sh that passes its version check and fails ``-m venv`` (nothing is installed)."""
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\nif [ "$1" = -m ] && [ "$2" = venv ]; then echo "venv made here" >&2; exit 1; fi\n'
                    f'exec "{sys.executable}" "$@"\n')
    fake.chmod(0o755)
    return fake


def _setup_venv(venv, python):
    return subprocess.run(["bash", str(REPO_ROOT / "tools" / "setup_venv.sh")], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "VENV": str(venv), "PYTHON": str(python)})


def test_setup_venv_refuses_a_folder_that_is_not_a_venv(tmp_path):
    """Issue 17 item 8: VENV naming the user's folder (no pyvenv.cfg) is stopped on, never removed."""
    folder = tmp_path / "my-project"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    run = _setup_venv(folder, _fake_python(tmp_path))
    assert run.returncode != 0 and "is not a Python virtual environment" in run.stderr, run.stdout + run.stderr
    assert "venv made here" not in run.stderr  # stopped before making anything
    assert (folder / "notes.txt").read_text() == "mine"


def test_setup_venv_remakes_only_a_half_made_venv(tmp_path):
    """A venv left without pip (pyvenv.cfg, a python that no longer runs) is made again: removed, then venv runs."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /nowhere\n")
    (venv / "bin" / "python").symlink_to(tmp_path / "gone" / "python3")
    run = _setup_venv(venv, _fake_python(tmp_path))
    assert "is incomplete" in run.stdout and "venv made here" in run.stderr, run.stdout + run.stderr
    assert run.returncode != 0 and not venv.exists()


# The teaching rule: the first time a step is taught, a code cell makes the library call itself; a helper
# that does the same at scale comes later. (notebook, the library call, the helper that wraps it)
TAUGHT_BEFORE_WRAPPED = [
    ("1_pipelines.ipynb", r"\.encode\(", r"embed_texts\("),
    ("1_pipelines.ipynb", r"pipeline\(\s*\"text-generation\"", r"load_generator\("),
    ("2_clustering.ipynb", r"umap\.UMAP\(", r"cached_fit_transform\("),
    ("2_clustering.ipynb", r"hdbscan\.HDBSCAN\(", r"stability\("),
    ("3_labeling_retrieval.ipynb", r"generator\(first_chat", r"label_clusters\("),
    ("3_labeling_retrieval.ipynb", r"pymupdf\.open\(", r"read_articles\("),
    ("3_labeling_retrieval.ipynb", r"log_softmax\(", r"score_choices\("),
]


@pytest.mark.parametrize("name, library_call, helper_call", TAUGHT_BEFORE_WRAPPED,
                         ids=[f"{n[0]}:{h.rstrip(chr(92) + '(')}" for n, _, h in TAUGHT_BEFORE_WRAPPED])
def test_library_call_is_taught_before_the_helper_that_wraps_it(name, library_call, helper_call):
    code = [cell.source for cell in nbformat.read(REPO_ROOT / name, as_version=4).cells if cell.cell_type == "code"]
    first = {pattern: next((i for i, source in enumerate(code) if re.search(pattern, source)), None)
             for pattern in (library_call, helper_call)}
    assert first[library_call] is not None, f"{name} never makes the library call {library_call!r} itself"
    assert first[helper_call] is not None, f"{name} no longer uses {helper_call!r}: update this table"
    assert first[library_call] < first[helper_call], (
        f"{name}: {helper_call!r} (code cell {first[helper_call]}) runs before the library call it wraps "
        f"(code cell {first[library_call]})")
