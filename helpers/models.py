"""Model loading, in one place: device and dtype, offline copies, the hub, tokens, and what a model is.

A name resolves to a local folder when one is there (loaded as itself, online or offline), else to the
installed packaged copy of exactly that hub name (sentence-transformers/all-MiniLM-L6-v2,
HuggingFaceTB/SmolLM2-135M-Instruct), else to the Hugging Face hub (offline: its local cache). Every loader
prints which model it loaded, from where, on which device and dtype: a model is never swapped silently.
``ModelInfo.key`` is the one identity every cache keys by.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from helpers.cache import cache_dir
from helpers.hub import (  # noqa: F401
    DEFAULT_EMBEDDER,
    PACKAGED_GENERATOR,
    SMOLLM2_GGUF,
    folder_fingerprint,
    hf_token,
    hub_access_problem,
    hub_online,
    hub_revision,
    local_folder,
    packaged_path,
)
from helpers.onnx_backend import OnnxTransformer, onnx_transformer


def _quiet_old_pipelines() -> None:
    """Drop two warnings that transformers < 5.23 (Colab has 5.15) prints at every ``pipe(..., max_new_tokens=...)``:
    it passes its own generation config along with the caller's arguments, then warns about that combination."""
    from importlib.metadata import version

    noise = ("Passing `generation_config` together with generation-related", "Both `max_new_tokens`")
    if tuple(int(part) for part in version("transformers").split(".")[:2]) < (5, 23):
        logging.getLogger("transformers.generation.utils").addFilter(lambda r: not str(r.msg).startswith(noise))


_quiet_old_pipelines()

COURSE_GENERATOR = "meta-llama/Llama-3.2-1B-Instruct"  # gated: needs a token
OPEN_GPU_GENERATOR = "Qwen/Qwen2.5-1.5B-Instruct"  # ungated, fits a T4 in fp16
OPEN_CPU_GENERATOR = "HuggingFaceTB/SmolLM2-360M-Instruct"  # ungated, fast enough on a CPU
COURSE_BASE_GENERATOR = "openai-community/gpt2"
COURSE_SENTIMENT = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
DEQUANTISED_SMOLLM2 = "SmolLM2-135M-Instruct-Q4_1-dequantised"  # folder in the model cache


def get_device() -> str:
    """``"cuda"``, then ``"mps"``, then ``"cpu"``."""
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


# Checkpoints known to overflow in float16 (NaN or "!!!!" output): where bfloat16 is not
# native, they are loaded in float32 instead.
FP16_UNSAFE_PREFIXES = ("Qwen/Qwen2",)


def get_dtype(device: str | None = None, name: str | None = None) -> torch.dtype:
    """The number format for model ``name`` on ``device``.

    CUDA: bfloat16 from compute capability 8.0 (A100, L4, H100); below (T4, V100) bfloat16 is only
    emulated, so float16, or float32 for a model known to overflow in it; MPS likewise. CPU: float32.
    """
    device = device or get_device()
    if device == "cuda" and torch.cuda.get_device_capability()[0] >= 8:
        return torch.bfloat16
    if device in ("cuda", "mps"):
        return torch.float32 if name and name.startswith(FP16_UNSAFE_PREFIXES) else torch.float16
    return torch.float32


@contextlib.contextmanager
def _no_progress_bars():
    """Silence transformers' progress bars (e.g. "Loading weights") inside the block."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging.enable_progress_bar()


@dataclass(frozen=True)
class ModelInfo:
    """What a model is and how it runs: the identity every cache (embeddings, ONNX exports, generations) keys by.

    ``name``: the hub name (also for a packaged copy) or the absolute folder; ``revision``: the hub commit of
    the snapshot loaded, or ``sha256:...`` of a folder's files (``folder_fingerprint``), "" where unknown;
    ``source``: where it was loaded from, in words; ``device`` (``cpu``, ``cuda:0``, ``mps``), ``dtype``
    (of the weights as run) and ``backend`` (``torch``, ``onnx``, ``onnx-int8``). Printed, it is the
    ``Model: ...`` line every loader shows.
    """

    name: str
    source: str
    device: str
    dtype: str
    backend: str = "torch"
    revision: str = ""

    @property
    def checkpoint(self) -> str:
        """The weights: ``name@revision`` (the name alone where the revision is unknown)."""
        return f"{self.name}@{self.revision}" if self.revision else self.name

    @property
    def key(self) -> str:
        """The identity as one stable string: ``checkpoint|backend|dtype|device class``."""
        return f"{self.checkpoint}|{self.backend}|{self.dtype}|{self.device.split(':')[0]}"

    def __str__(self) -> str:
        dtype = self.dtype if self.backend == "torch" else f"{self.dtype} (ONNX Runtime)"
        return f"Model: {self.name} | from: {self.source} | device: {self.device} | dtype: {dtype}"


def _packaged_folders() -> dict[Path, str]:
    """Folder -> hub name of every packaged copy installed here (and the cached dequantised SmolLM2)."""
    folders = {(cache_dir("models") / DEQUANTISED_SMOLLM2).resolve(): PACKAGED_GENERATOR}
    for name in (DEFAULT_EMBEDDER, PACKAGED_GENERATOR):
        if (path := packaged_path(name)) is not None:
            folders[path.resolve()] = name
    return folders


def _checkpoint(location: str) -> tuple[str, str, str]:
    """(name, source, revision) of a model loaded from ``location``: a folder or a hub name."""
    path = Path(location).expanduser()
    if not path.is_dir():
        return location, "Hugging Face hub", hub_revision(location) or ""
    folder = path.resolve()
    packaged = _packaged_folders().get(folder)
    if packaged:
        return packaged, f"packaged copy ({location})", folder_fingerprint(folder)
    return str(folder), "local folder", folder_fingerprint(folder)


def model_info(model) -> ModelInfo:
    """What a SentenceTransformer or pipeline is, read from the object (also one built directly; packaged: hub name)."""
    core = getattr(model, "model", model)  # a pipeline holds its model; a SentenceTransformer is one
    tokenizer = getattr(model, "tokenizer", None)
    location = str(getattr(tokenizer, "name_or_path", "") or getattr(core, "name_or_path", "") or type(core).__name__)
    device = str(getattr(model, "device", None) or getattr(core, "device", "cpu"))
    backend, dtype = "torch", str(getattr(core, "dtype", "")).replace("torch.", "")
    first = model[0] if isinstance(model, torch.nn.Sequential) else None  # a SentenceTransformer's transformer module
    if isinstance(getattr(first, "model", None), OnnxTransformer):
        backend = first.model.backend
        dtype = "int8" if backend == "onnx-int8" else "float32"
    elif first is not None:
        dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    name, source, revision = _checkpoint(location)
    return ModelInfo(name, source, device, dtype, backend, revision)


def model_location(name: str, fallback: str | None = None) -> str:
    """What to pass to ``SentenceTransformer(...)`` or ``pipeline(...)`` to load model ``name``.

    A local folder: its absolute path, online or offline. The installed packaged copy of exactly this hub
    name: its folder (the packaged SmolLM2 GGUF dequantised once). Else ``name``, for the hub (offline:
    its local cache). Offline with ``name`` in none of these: the packaged ``fallback``, and a line says so;
    without a fallback, a RuntimeError says what to do. A path with no folder there: FileNotFoundError.
    """
    folder = local_folder(name)
    if folder is not None:
        return str(folder)
    if packaged_path(name) is None and not _hub_serves(name):
        if fallback is None or packaged_path(fallback) is None:
            raise _unreachable(name, fallback or DEFAULT_EMBEDDER)
        print(f"{name!r} can't be loaded (the hub is unreachable): using the packaged {fallback} instead.")
        name = fallback
    local = packaged_path(name)
    if local is None:
        return name
    return str(_dequantise_smollm2(local) if name == PACKAGED_GENERATOR else local)


def _hub_serves(name: str) -> bool:
    """Whether hub model ``name`` can be loaded: the hub is reachable, or a snapshot is in the local cache."""
    return hub_online() or hub_revision(name) is not None


def _unreachable(name: str, offline_choice: str) -> RuntimeError:
    return RuntimeError(
        f"Model {name!r} is not installed locally (not a model folder, not a copy installed with the course, "
        f"not in the Hugging Face cache) and the Hugging Face hub is unreachable. Offline, give the path of a "
        f"model folder or use {offline_choice!r} (installed with the course); or connect to the internet.")


EMBEDDER_BACKENDS = ("torch", "onnx", "onnx-int8")


@functools.lru_cache(maxsize=4)
def load_embedder(name: str = DEFAULT_EMBEDDER, device: str | None = None, backend: str = "torch"):
    """A sentence-transformers model (fp32 on a CPU, fp16 on a GPU) from a folder, a packaged copy or the hub.

    On a CPU the transformer can run through ONNX Runtime, exported once to the model cache:
    ``backend="onnx"`` (fp32, the same vectors to ~1e-6, ~3x faster for one short text such as a query,
    no faster for long ones) or ``"onnx-int8"`` (opt-in: only ~1.2-1.4x faster on an AVX2 CPU, cosine
    ~0.99 to fp32 on average; bench/RESULTS.md).
    """
    from sentence_transformers import SentenceTransformer

    device = _check_embedder_settings(device, backend)
    # On a CPU, fp32 whatever the folder was saved in (transformers would keep fp16 weights fp16, slow there).
    settings = {"model_kwargs": {"dtype": torch.float32}} if device == "cpu" else {}
    with _no_progress_bars():  # loading takes a second; a progress bar would only clutter the notebook
        model = SentenceTransformer(model_location(name), device=device, token=hf_token(), **settings)
    if device != "cpu":
        model = model.half()
    if backend != "torch":
        model[0].model = onnx_transformer(model[0].model, model_info(model).checkpoint, backend)
    print(model_info(model))
    return model


def _check_embedder_settings(device: str | None, backend: str) -> str:
    """The device to load on; ValueError for an unknown backend or an ONNX backend off the CPU."""
    if backend not in EMBEDDER_BACKENDS:
        raise ValueError(f"unknown embedder backend {backend!r}: use one of {EMBEDDER_BACKENDS}")
    device = device or get_device()
    if backend != "torch" and device != "cpu":
        raise ValueError(f'backend={backend!r} runs on the CPU only; on {device!r} use backend="torch" (fp16)')
    return device


def embedder_info(name: str, backend: str = "torch", device: str | None = None) -> ModelInfo | None:
    """The ``ModelInfo`` of ``load_embedder(name, device, backend)``, known without loading the model;
    None where only loading tells (a hub name while the hub is reachable: it may have a newer commit)."""
    device = _check_embedder_settings(device, backend)
    if local_folder(name) is None and packaged_path(name) is None and (hub_online() or not hub_revision(name)):
        return None
    name, source, revision = _checkpoint(model_location(name))
    dtype = {"torch": "float32" if device == "cpu" else "float16", "onnx": "float32", "onnx-int8": "int8"}[backend]
    return ModelInfo(name, source, device, dtype, backend, revision)


@functools.lru_cache(maxsize=4)
def load_query_embedder(model=DEFAULT_EMBEDDER):
    """The embedder that gives ``model``'s vectors fastest for short texts (search queries).

    On a CPU, ``model`` (a name or a torch model from ``load_embedder``) through ONNX Runtime fp32: one
    short text spends most of its ~15 ms in PyTorch on per-layer overheads. Any other model is returned
    as it is; if the export fails, PyTorch is used and the reason printed.
    """
    info = None if isinstance(model, str) else model_info(model)
    name, device = (model, get_device()) if info is None else (info.name, info.device)
    if device == "cpu" and (info is None or info.backend == "torch"):
        try:
            return load_embedder(name, backend="onnx")
        except ImportError as error:  # Colab's install leaves out onnx and its newer protobuf
            print(f"Search queries run through PyTorch (about 15 ms each): the faster ONNX Runtime path needs {error.name} "
                  f"(pip install {error.name}).")
        except (RuntimeError, OSError) as error:
            print(f"Queries are embedded with PyTorch: the ONNX export of {name} failed ({error}).")
    return load_embedder(model) if isinstance(model, str) else model


def choose_generator(device: str | None = None) -> str:
    """The default instruct model for this device and access (see ``load_generator``)."""
    device = device or get_device()
    if not hub_online():
        return PACKAGED_GENERATOR
    if device == "cuda":
        return COURSE_GENERATOR if hf_token() else OPEN_GPU_GENERATOR
    return OPEN_CPU_GENERATOR


def _dequantise_smollm2(folder: Path) -> Path:
    """Folder of the packaged SmolLM2 as plain safetensors, dequantised from its GGUF file once and cached."""
    dequantised = cache_dir("models") / DEQUANTISED_SMOLLM2
    if not (dequantised / "config.json").is_file():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        print("Dequantising the packaged GGUF model once (about 30 s); later loads take seconds.")
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
        # The weights are plain float tensors now; forget the GGUF origin so they can be saved.
        model.hf_quantizer, model.is_quantized, model.quantization_method = None, False, None
        model.config.__dict__.pop("quantization_config", None)
        staging = dequantised.with_name(f"{dequantised.name}.tmp-{os.getpid()}")  # one per process: runs in parallel don't collide
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            staging.replace(dequantised)
        except OSError:  # another process finished first: its copy is the same
            shutil.rmtree(staging, ignore_errors=True)
    return dequantised


def load_generator(name: str | None = None, device: str | None = None, fallback: bool = True):
    """A transformers ``pipeline("text-generation")`` for model ``name``, loaded once per session.

    ``name``: a hub name, or a local model folder (always loaded as itself, online or offline).
    ``name=None``: Llama-3.2-1B-Instruct on a GPU with a Hugging Face token, else an ungated instruct model
    that suits the device, and offline the packaged SmolLM2-135M-Instruct. With ``fallback``, a hub model the
    hub can't serve (offline and not in the local cache, or gated) is replaced, reason printed: by the open
    model for the device online, by the packaged SmolLM2 offline. ``model_info(pipe)`` tells which model it is.
    """
    device = device or get_device()
    name = name or choose_generator(device)
    if local_folder(name) is None and packaged_path(name) is None:
        online = hub_online()
        problem = hub_access_problem(name) if online else None if hub_revision(name) else "the hub is unreachable"
        if problem:
            substitute = (OPEN_GPU_GENERATOR if device == "cuda" else OPEN_CPU_GENERATOR) if online else PACKAGED_GENERATOR
            if not fallback or substitute == name or (not online and packaged_path(PACKAGED_GENERATOR) is None):
                raise _unreachable(name, PACKAGED_GENERATOR) if not online else RuntimeError(f"{name}: {problem}")
            kind = "open" if online else "packaged"
            print(f"{name!r} can't be loaded ({problem}): using the {kind} {substitute} instead.")
            name = substitute
    return _load_pipeline(name, device)


@functools.lru_cache(maxsize=2)
def _load_pipeline(name: str, device: str):
    from transformers import pipeline

    with _no_progress_bars():  # a one-second load needs no progress bar
        # BPE tokenizers: the WordPiece clean-up would delete spaces before punctuation (and < 5.23 warns at every call).
        pipe = pipeline("text-generation", model=model_location(name), dtype=get_dtype(device, name), device=device,
                        token=hf_token(), clean_up_tokenization_spaces=False)
    pipe.tokenizer.clean_up_tokenization_spaces = False
    if pipe.tokenizer.pad_token is None:  # batches are padded; models without a pad token pad with end-of-text
        pipe.tokenizer.pad_token = pipe.tokenizer.eos_token
    print(model_info(pipe))
    return pipe
