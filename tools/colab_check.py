"""Would the Colab set-up cell replace any of Colab's own packages?

    python -m tools.colab_check [requirements.txt]

Resolves the requirements with ``pip install --dry-run --report`` in a fresh
Python 3.13 environment in which Colab's packages (``tools/colab/pip-freeze.gpu.txt``)
appear installed, and lists every package of that list that pip would install
in another version: torch, numpy, the notebook stack or anything else
(google-colab pins part of it). Exit status 1 when there is one.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FREEZE = Path(__file__).with_name("colab") / "pip-freeze.gpu.txt"
# Colab warns that replacing these can crash the runtime or break its widgets.
NOTEBOOK_STACK = ("ipykernel", "ipython", "jupyter-client", "traitlets", "ipywidgets", "notebook",
                  "tornado", "pyzmq", "nbclient", "nbformat")


def canonical(name: str) -> str:
    """A package name as pip compares it (PEP 503): lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def colab_versions(freeze: Path = FREEZE) -> dict[str, str]:
    """``{canonical name: version}`` of every ``name==version`` line of a pip freeze."""
    versions = {}
    for line in freeze.read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line.strip())
        if match:
            versions[canonical(match.group(1))] = match.group(2)
    return versions


def python313() -> str | None:
    """Path of a working Python 3.13 interpreter (``python3.13`` on PATH or pyenv's 3.13.x), or None."""
    tries = [(["python3.13"], {})]
    if shutil.which("pyenv"):
        found = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True).stdout.split()
        tries += [(["pyenv", "exec", "python"], {"PYENV_VERSION": v}) for v in sorted(found) if v.startswith("3.13")]
    for command, env in tries:
        try:
            out = subprocess.run([*command, "-c", "import sys; print(sys.version_info[:2] == (3, 13), sys.executable)"],
                                 env={**os.environ, **env}, capture_output=True, text=True)
        except OSError:
            continue
        ok, _, path = out.stdout.strip().partition(" ")
        if out.returncode == 0 and ok == "True":
            return path
    return None


def fake_installed(versions: dict[str, str], folder: Path) -> None:
    """Make ``folder`` look, to pip on ``sys.path``, like a site-packages holding ``versions``."""
    for name, version in versions.items():
        info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "INSTALLER").write_text("colab\n")
        (info / "RECORD").write_text("")


def resolve_over_colab(requirements: list[str], python: str, workdir: Path) -> dict[str, str]:
    """``{canonical name: version}`` that ``pip install -r ...`` would install over Colab's packages."""
    site, venv, report = workdir / "colab-site", workdir / "venv", workdir / "report.json"
    fake_installed(colab_versions(), site)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    command = [str(venv / "bin" / "python"), "-m", "pip", "install", "--dry-run", "--quiet",
               "--disable-pip-version-check", "--report", str(report)]
    for requirement in requirements:
        command += ["-r", requirement] if Path(requirement).is_file() else [requirement]
    env = {**os.environ, "PYTHONPATH": str(site), "PIP_CONSTRAINT": "", "PIP_NO_INPUT": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip could not resolve {' '.join(requirements)} over Colab's packages:\n{done.stderr[-3000:]}")
    installs = json.loads(report.read_text())["install"]
    return {canonical(item["metadata"]["name"]): item["metadata"]["version"] for item in installs}


def replaced_packages(installs: dict[str, str], colab: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """``{name: (Colab's version, pip's version)}`` for each of Colab's packages that pip would replace."""
    colab = colab if colab is not None else colab_versions()
    return {name: (colab[name], version) for name, version in installs.items() if name in colab}


def main(requirements: list[str]) -> int:
    """Print what installing ``requirements`` over Colab's packages adds and replaces; 1 when it replaces one."""
    python = python313()
    if python is None:
        print("No Python 3.13 found (Colab's version): install it, or put python3.13 on PATH.")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        installs = resolve_over_colab(requirements or ["requirements.txt"], python, Path(tmp))
    replaced = replaced_packages(installs)
    print("pip would add:", ", ".join(f"{n} {v}" for n, v in sorted(installs.items()) if n not in replaced) or "nothing")
    for name, (old, new) in sorted(replaced.items()):
        stack = " (Colab's notebook stack)" if name in NOTEBOOK_STACK else ""
        print(f"pip would REPLACE {name} {old} -> {new}{stack}")
    return 1 if replaced else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
