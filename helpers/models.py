"""Model loading, in one place: device and dtype, offline copies, the hub, tokens.

A name resolves to an installed packaged copy when there is one (all-MiniLM-L6-v2, SmolLM2-135M-Instruct),
else to the Hugging Face hub. Every loader prints which model it loaded, from where, on which device and
dtype: a model is never swapped silently.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from helpers.cache import cache_dir, write_atomically
from helpers.hub import (  # noqa: F401
    DEFAULT_EMBEDDER,
    PACKAGED_GENERATOR,
    SMOLLM2_GGUF,
    hf_token,
    hub_access_problem,
    hub_online,
    packaged_path,
)


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
    """A loaded model's name (the hub's, also for a packaged copy), source, device and dtype.

    ``key`` adds the backend, for cache keys; printed, it is the ``Model: ...`` line every loader shows.
    """

    name: str
    source: str
    device: str
    dtype: str
    backend: str = "torch"

    @property
    def key(self) -> str:
        return self.name if self.backend == "torch" else f"{self.name}@{self.backend}"

    def __str__(self) -> str:
        return f"Model: {self.name} | from: {self.source} | device: {self.device} | dtype: {self.dtype}"


def _packaged_folders() -> dict[Path, str]:
    """Folder -> hub name of every packaged copy installed here (and the cached dequantised SmolLM2)."""
    folders = {(cache_dir("models") / DEQUANTISED_SMOLLM2).resolve(): PACKAGED_GENERATOR}
    for name in (DEFAULT_EMBEDDER, PACKAGED_GENERATOR):
        if (path := packaged_path(name)) is not None:
            folders[path.resolve()] = name
    return folders


def model_info(model) -> ModelInfo:
    """What a SentenceTransformer or pipeline is, read from the object (also one built directly; packaged: hub name)."""
    core = getattr(model, "model", model)  # a pipeline holds its model; a SentenceTransformer is one
    tokenizer = getattr(model, "tokenizer", None)
    location = str(getattr(tokenizer, "name_or_path", "") or getattr(core, "name_or_path", "") or type(core).__name__)
    path = Path(location).expanduser()
    packaged = _packaged_folders().get(path.resolve()) if path.is_dir() else None
    source = f"packaged copy ({location})" if packaged else "local folder" if path.is_dir() else "Hugging Face hub"
    device = str(getattr(model, "device", None) or getattr(core, "device", "cpu"))
    backend, dtype = "torch", str(getattr(core, "dtype", "")).replace("torch.", "")
    first = model[0] if isinstance(model, torch.nn.Sequential) else None  # a SentenceTransformer's transformer module
    if isinstance(getattr(first, "model", None), _OnnxTransformer):
        backend = first.model.backend
        dtype = "int8 (ONNX Runtime)" if backend == "onnx-int8" else "float32 (ONNX Runtime)"
    elif first is not None:
        dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    return ModelInfo(packaged or location, source, device, dtype, backend)


def model_location(name: str, fallback: str | None = None) -> str:
    """What to pass to ``SentenceTransformer(...)`` or ``pipeline(...)`` to load model ``name``.

    The folder of an installed packaged copy (the packaged SmolLM2 GGUF dequantised once), else ``name``,
    for the hub. Hub unreachable and ``name`` not packaged: the packaged ``fallback``, and a line says so;
    without a fallback, a RuntimeError says what to do.
    """
    if packaged_path(name) is None and not hub_online():
        if fallback is None or packaged_path(fallback) is None:
            raise _unreachable(name, fallback or DEFAULT_EMBEDDER)
        print(f"{name!r} can't be loaded (the hub is unreachable): using the packaged {fallback} instead.")
        name = fallback
    local = packaged_path(name)
    if local is None:
        return name
    return str(_dequantise_smollm2(local) if name == PACKAGED_GENERATOR else local)


def _unreachable(name: str, offline_choice: str) -> RuntimeError:
    return RuntimeError(
        f"Model {name!r} is not installed locally and the Hugging Face hub is unreachable. "
        f"Offline, use {offline_choice!r} (installed with the course), or connect to the internet.")


EMBEDDER_BACKENDS = ("torch", "onnx", "onnx-int8")


@functools.lru_cache(maxsize=4)
def load_embedder(name: str = DEFAULT_EMBEDDER, device: str | None = None, backend: str = "torch"):
    """A sentence-transformers model (fp16 on GPU); the packaged copy when installed.

    On a CPU the transformer can run through ONNX Runtime, exported once to the model cache:
    ``backend="onnx"`` (fp32, the same vectors to ~1e-6, ~3x faster for one short text such as a query,
    no faster for long ones) or ``"onnx-int8"`` (opt-in: only ~1.2-1.4x faster on an AVX2 CPU, cosine
    ~0.99 to fp32 on average; bench/RESULTS.md).
    """
    from sentence_transformers import SentenceTransformer

    if backend not in EMBEDDER_BACKENDS:
        raise ValueError(f"unknown embedder backend {backend!r}: use one of {EMBEDDER_BACKENDS}")
    device = device or get_device()
    if backend != "torch" and device != "cpu":
        raise ValueError(f'backend={backend!r} runs on the CPU only; on {device!r} use backend="torch" (fp16)')
    with _no_progress_bars():  # loading takes a second; a progress bar would only clutter the notebook
        model = SentenceTransformer(model_location(name), device=device, token=hf_token())
    if device != "cpu":
        model = model.half()
    if backend != "torch":
        model[0].model = _onnx_transformer(model[0].model, name, backend)
    print(model_info(model))
    return model


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


def _onnx_transformer(transformer, name: str, backend: str):
    """``transformer`` (a BERT-like ``AutoModel``) as an ONNX Runtime module with the same call and output.

    Exported once (fp32; for int8 then quantised per output channel) into the model cache, stamped with
    the library versions that made it.
    """
    import onnxruntime
    import transformers

    key = f"torch {torch.__version__}, transformers {transformers.__version__}, onnxruntime {onnxruntime.__version__}"
    fp32_path = _cached_model_file(cache_dir("models") / f"{name.split('/')[-1]}-onnx", key,
                                   lambda out: _export_onnx(transformer, name, out))
    path = fp32_path
    if backend == "onnx-int8":
        def quantise(out: Path) -> None:
            try:
                from onnxruntime.quantization import QuantType, quantize_dynamic
            except ImportError:
                raise RuntimeError('backend="onnx-int8" needs the onnx package: pip install onnx') from None
            quantize_dynamic(str(fp32_path), str(out), weight_type=QuantType.QInt8, per_channel=True)

        path = _cached_model_file(cache_dir("models") / f"{name.split('/')[-1]}-onnx-int8", key, quantise)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return _OnnxTransformer(session, transformer.config, backend)


def _cached_model_file(folder: Path, key: str, make) -> Path:
    """``folder/model.onnx``, made by ``make(path)`` unless it is there with the same version stamp."""
    path, stamp = folder / "model.onnx", folder / "versions.txt"
    if not (path.is_file() and stamp.is_file() and stamp.read_text() == key):
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(path, make)
        stamp.write_text(key)
    return path


def _export_onnx(transformer, name: str, out: Path) -> None:
    """Write ``transformer`` as an fp32 ONNX graph with dynamic batch and length."""
    if importlib.util.find_spec("onnx") is None:  # Colab's install leaves it out (it would replace protobuf)
        raise ImportError("the ONNX export needs the onnx package", name="onnx")
    print(f"Exporting {name} to ONNX once (about 15 s); kept at {out.parent}.")
    ids = torch.ones(2, 8, dtype=torch.long)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    axes = {k: {0: "batch", 1: "tokens"} for k in [*inputs, "last_hidden_state"]}

    class ByPosition(torch.nn.Module):  # the TorchScript exporter passes inputs by position
        def __init__(self):
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.transformer(input_ids=input_ids, attention_mask=attention_mask,
                                    token_type_ids=token_type_ids).last_hidden_state

    # The tracer warns about every shape-dependent Python branch of the model; the axes
    # above are dynamic and the tests compare outputs with PyTorch's, so the warnings are noise.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(ByPosition().eval(), tuple(inputs.values()), str(out), input_names=list(inputs),
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17, dynamo=False)


class _OnnxTransformer(torch.nn.Module):
    """Stands in for the ``AutoModel`` inside a SentenceTransformer: same inputs, ``last_hidden_state`` out."""

    def __init__(self, session, config, backend: str):
        super().__init__()
        self.session, self.config, self.backend = session, config, backend
        self.input_names = [i.name for i in session.get_inputs()]

    def forward(self, input_ids, attention_mask, token_type_ids=None, **_):
        given = {"input_ids": input_ids, "attention_mask": attention_mask,
                 "token_type_ids": torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids}
        feeds = {k: given[k].cpu().numpy().astype("int64") for k in self.input_names}
        return {"last_hidden_state": torch.from_numpy(self.session.run(["last_hidden_state"], feeds)[0])}


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

    ``name=None``: Llama-3.2-1B-Instruct on a GPU with a Hugging Face token, else an ungated instruct model
    that suits the device, and offline the packaged SmolLM2-135M-Instruct. With ``fallback``, a model the
    hub can't serve (offline, or gated) is replaced, reason printed: by the open model for the device
    online, by the packaged SmolLM2 offline. ``model_info(pipe)`` tells which model it is.
    """
    device = device or get_device()
    name = name or choose_generator(device)
    if packaged_path(name) is None:
        online = hub_online()
        problem = hub_access_problem(name) if online else "the hub is unreachable"
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
