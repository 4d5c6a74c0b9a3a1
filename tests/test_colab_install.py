"""The Colab set-up cell (`pip install -q -r requirements.txt`) must not replace any of Colab's packages.

Resolved for real with pip (PyPI is reached) in a Python 3.13 environment in which
Colab's GPU package list appears installed: see tools/colab_check.py.
"""
import os
import re

import pytest

from helpers.cache import REPO_ROOT
from tools import colab_check

PYTHON313 = colab_check.python313()
needs_313 = pytest.mark.skipif(PYTHON313 is None and not os.environ.get("CI"),
                               reason="no Python 3.13 here (Colab's version); CI has one")


def test_requirements_name_neither_torch_nor_the_notebook_stack():
    names = [colab_check.canonical(re.split(r"[<>=!~;\[ ]", line.strip())[0])
             for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert names, "requirements.txt lists nothing"
    forbidden = {"torch", *colab_check.NOTEBOOK_STACK}
    assert not forbidden & set(names), f"requirements.txt names {sorted(forbidden & set(names))}"


@needs_313
def test_colab_install_replaces_none_of_colabs_packages(tmp_path):
    installs = colab_check.resolve_over_colab([str(REPO_ROOT / "requirements.txt")], PYTHON313, tmp_path)
    assert "pymupdf" in installs  # what Colab lacks is added: the resolution really ran
    replaced = colab_check.replaced_packages(installs)
    assert replaced == {}, "the Colab set-up would replace " + ", ".join(
        f"{name} {old} -> {new}" for name, (old, new) in sorted(replaced.items()))


@needs_313
def test_the_check_names_a_replaced_notebook_package(tmp_path):
    installs = colab_check.resolve_over_colab(["ipywidgets>=8"], PYTHON313, tmp_path)
    replaced = colab_check.replaced_packages(installs)
    assert replaced["ipywidgets"][0] == "7.7.1" and replaced["ipywidgets"][1].startswith("8.")
