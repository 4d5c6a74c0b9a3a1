"""The repository is an installable project: imports work without sys.path edits, metadata and data come from one place."""
import fnmatch
import importlib.metadata
import json
import re
import tomllib

import pytest
from packaging.requirements import Requirement

from helpers.cache import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
_SYS_PATH_EDIT = re.compile(r"sys\.path\.(?:insert|append|extend)\(|sys\.path\s*(?:\[[^\]]*\])?\s*\+?=(?!=)")
CODE_FOLDERS = ("helpers", "scale", "tools", "bench", "tests", ".ci")


def _sources():
    """(path relative to the repository, text) of every script and Python file, and of every notebook's code."""
    for folder in CODE_FOLDERS:
        for path in sorted((REPO_ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".sh") or path.parent.name == ".ci":
                yield path.relative_to(REPO_ROOT).as_posix(), path.read_text(encoding="utf-8")
    for path in sorted(REPO_ROOT.glob("[0-9]_*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        yield path.name, "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def test_no_code_edits_sys_path():
    edits = [name for name, text in _sources() if _SYS_PATH_EDIT.search(text)]
    assert edits == [], f"{edits} edit sys.path: import through the installed project instead (pip install -e .)"


def test_the_sys_path_check_finds_an_edit():
    edit = "sys.path"  # written in two parts, so that this file does not match itself
    assert _SYS_PATH_EDIT.search(edit + ".insert(0, str(REPO))")
    assert _SYS_PATH_EDIT.search(edit + "[:0] = [str(REPO)]")
    assert _SYS_PATH_EDIT.search(edit + " += ['tools']")
    assert not _SYS_PATH_EDIT.search(f"print({edit}); {edit} == []")


def test_dependencies_are_read_from_requirements_txt_only():
    project = PYPROJECT["project"]
    assert "dependencies" not in project and "dependencies" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["dependencies"] == {"file": ["requirements.txt"]}


def test_every_data_file_of_helpers_is_package_data():
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["helpers"]
    helpers = REPO_ROOT / "helpers"
    data = [p.relative_to(helpers).as_posix() for p in helpers.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert data, "helpers/ holds no data files"
    missing = [name for name in data if not any(fnmatch.fnmatch(name, pattern) for pattern in patterns)]
    assert missing == [], f"add {missing} to [tool.setuptools.package-data] in pyproject.toml"


def _installed_requirements() -> list[str]:
    try:
        distribution = importlib.metadata.distribution("llm4scisci")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the project is not installed in this environment: make setup (pip install --no-deps -e .)")
    return [str(Requirement(r)) for r in distribution.requires or [] if "extra ==" not in r]


def test_installed_project_requires_what_requirements_txt_lists():
    listed = [str(Requirement(line.strip())) for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.lstrip().startswith("#")]
    assert _installed_requirements() == listed, "the installed metadata is stale: run make setup"
