"""An OpenAI-compatible server for the course's LLM work: ``transformers serve`` here, vLLM on a GPU cluster.

Run from the repository's root (or with the project installed)::

    python -m scale.serve                 # the packaged SmolLM2 on this machine's CPU, 127.0.0.1:8000
    python -m scale.serve --print-vllm    # the vLLM command for the course's GPU model, with an API key

Then, in the shell that runs the notebooks (``helpers.endpoint`` reads these)::

    export SCISCI_LLM_BASE_URL=http://127.0.0.1:8000/v1 SCISCI_LLM_MODEL=<the model it printed> \
           SCISCI_LLM_SERVER=transformers

vLLM listens on every interface (``--host 0.0.0.0``), so its command carries ``--api-key``
(``SCISCI_LLM_API_KEY``, or a new random one); ``helpers.endpoint`` sends that key over plain http
only to this machine, so reach the GPU machine through an SSH tunnel (or https).

``transformers_server`` is the same as a context manager: it starts the server
on a free loopback port, waits until it answers, and always stops it.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from helpers.endpoint import ENV_API_KEY


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def packaged_model_folder() -> Path:
    """The packaged SmolLM2-135M-Instruct as a plain Hugging Face folder (the copy ``load_generator`` dequantises once)."""
    from helpers.cache import cache_dir
    from helpers.models import PACKAGED_GENERATOR, load_generator

    load_generator(PACKAGED_GENERATOR, device="cpu")  # makes the folder on first use
    folders = sorted(cache_dir("models").glob("SmolLM2-135M-Instruct*dequantised"))
    if not folders or not (folders[0] / "config.json").is_file():
        raise RuntimeError(f"no dequantised SmolLM2 folder in {cache_dir('models')}")
    return folders[0]


def transformers_serve_command(model: str | Path, port: int, device: str = "cpu") -> list[str]:
    """``transformers serve`` pinned to ``model`` (a hub name or a local folder) on 127.0.0.1:``port``."""
    cli = Path(sys.executable).with_name("transformers")
    launcher = [str(cli)] if cli.is_file() else [sys.executable, "-m", "transformers.cli.transformers"]
    return [*launcher, "serve", str(model), "--device", device, "--host", "127.0.0.1", "--port", str(port)]


@contextlib.contextmanager
def transformers_server(model: str | Path, port: int | None = None, device: str = "cpu",
                        start_timeout: float = 180.0, log_path: str | Path | None = None):
    """Run ``transformers serve`` for ``model`` while the block runs; yields its base URL (``.../v1``).

    Waits at most ``start_timeout`` seconds for ``/health``; raises RuntimeError
    with the end of the server's log when it exits or does not come up. The
    process is terminated (then killed after 10 s) when the block ends.
    """
    port = port or free_port()
    log = open(log_path or os.devnull, "w")
    process = subprocess.Popen(transformers_serve_command(model, port, device), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"transformers serve exited with code {process.returncode}; log: "
                                   f"{_tail(log_path)}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"transformers serve did not answer on port {port} within {start_timeout:g} s; "
                                   f"log: {_tail(log_path)}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _tail(path, n: int = 1500) -> str:
    try:
        return Path(path).read_text(errors="replace")[-n:] if path else "(not kept: pass log_path)"
    except OSError:
        return "(unreadable)"


def vllm_command(api_key: str, model: str = "meta-llama/Llama-3.2-1B-Instruct", port: int = 8000,
                 gpus: int = 1) -> str:
    """The shell command that serves ``model`` with vLLM's OpenAI-compatible server (on a GPU machine).

    It listens on every interface, so it answers only requests that carry ``api_key``.
    """
    if not api_key or api_key.startswith("-"):
        raise ValueError(f"the API key must be non-empty and not start with '-' (vLLM would read it as an option); "
                         f"set {ENV_API_KEY} to another one")
    return (f"vllm serve {model} --host 0.0.0.0 --port {port} --tensor-parallel-size {gpus} "
            f"--dtype auto --max-model-len 4096 --gpu-memory-utilization 0.90 --api-key {shlex.quote(api_key)}")


def print_vllm(model: str, port: int) -> None:
    """Print the vLLM command with a key (``SCISCI_LLM_API_KEY``, or a new random one) and why it has one."""
    key = os.environ.get(ENV_API_KEY, "").strip()
    source = f"from {ENV_API_KEY}" if key else "new"
    while not key or (source == "new" and key.startswith("-")):  # 32 characters of A-Z a-z 0-9 _ -
        key = secrets.token_urlsafe(24)
    print(vllm_command(key, model, port))
    print(f"# --api-key ({source}): on 0.0.0.0 a server without a key answers anyone on the network who finds "
          "the port, with your GPU and model.")
    print(f"# Where the notebooks run: export {ENV_API_KEY}={shlex.quote(key)} and reach the server through https "
          f"or an SSH tunnel (ssh -N -L {port}:127.0.0.1:{port} <gpu-host>; "
          f"SCISCI_LLM_BASE_URL=http://127.0.0.1:{port}/v1).")


def main(argv=None) -> None:
    """The command line (``python -m scale.serve --help``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="hub name or local folder (default: the packaged SmolLM2)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--print-vllm", action="store_true", help="print the vLLM command instead")
    args = parser.parse_args(argv)
    if args.print_vllm:
        try:
            print_vllm(args.model or "meta-llama/Llama-3.2-1B-Instruct", args.port)
        except ValueError as error:
            parser.error(str(error))
        return
    model = args.model or str(packaged_model_folder())
    with transformers_server(model, args.port, args.device) as url:
        print(f"Serving {model} at {url}. In the notebooks' shell:\n"
              f"  export SCISCI_LLM_BASE_URL={url} SCISCI_LLM_MODEL={model} SCISCI_LLM_SERVER=transformers\n"
              "Stop with Ctrl-C.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
