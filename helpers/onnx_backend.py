"""The ONNX Runtime fast path for sentence embedders on a CPU: export once, cache the file, stand in for the model.

``onnx_transformer`` turns the ``AutoModel`` inside a SentenceTransformer into an ``OnnxTransformer``
with the same call and output. The exported file is cached under the model cache, in a folder named by
the model's identity (``ModelInfo.checkpoint``: hub name and revision, or folder and fingerprint), so two
models never share an export. ``helpers.models.load_embedder(backend="onnx")`` is the way in.
"""
from __future__ import annotations

import importlib.util
import re
import warnings
from pathlib import Path

import torch

from helpers.cache import cache_dir, content_hash, write_atomically


def onnx_transformer(transformer, checkpoint: str, backend: str) -> OnnxTransformer:
    """``transformer`` (a BERT-like ``AutoModel``) as an ONNX Runtime module with the same call and output.

    ``checkpoint`` names its weights (``ModelInfo.checkpoint``) and keys the cache. Exported once (fp32;
    for ``backend="onnx-int8"`` then quantised per output channel), stamped with the library versions that made it.
    """
    import onnxruntime
    import transformers

    versions = f"torch {torch.__version__}, transformers {transformers.__version__}, onnxruntime {onnxruntime.__version__}"
    fp32_path = cached_model_file(export_folder(checkpoint, "onnx"), versions,
                                  lambda out: export_onnx(transformer, checkpoint, out))
    path = fp32_path
    if backend == "onnx-int8":
        def quantise(out: Path) -> None:
            try:
                from onnxruntime.quantization import QuantType, quantize_dynamic
            except ImportError:
                raise RuntimeError('backend="onnx-int8" needs the onnx package: pip install onnx') from None
            quantize_dynamic(str(fp32_path), str(out), weight_type=QuantType.QInt8, per_channel=True)

        path = cached_model_file(export_folder(checkpoint, backend), versions, quantise)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return OnnxTransformer(session, transformer.config, backend)


def export_folder(checkpoint: str, backend: str) -> Path:
    """Cache folder of ``checkpoint``'s export for ``backend``: the model's last name part, to read, and a hash
    of the whole checkpoint, so that ``.../a/model`` and ``.../b/model`` never share one."""
    readable = re.sub(r"[^A-Za-z0-9.-]+", "_", checkpoint.split("@")[0].rstrip("/").split("/")[-1])[:60]
    return cache_dir("models") / f"{readable}-{content_hash(checkpoint)[:12]}-{backend}"


def cached_model_file(folder: Path, versions: str, make) -> Path:
    """``folder/model.onnx``, made by ``make(path)`` unless it is there with the same version stamp."""
    path, stamp = folder / "model.onnx", folder / "versions.txt"
    if not (path.is_file() and stamp.is_file() and stamp.read_text() == versions):
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(path, make)
        stamp.write_text(versions)
    return path


def export_onnx(transformer, checkpoint: str, out: Path) -> None:
    """Write ``transformer`` as an fp32 ONNX graph with dynamic batch and length."""
    if importlib.util.find_spec("onnx") is None:  # Colab's install leaves it out (it would replace protobuf)
        raise ImportError("the ONNX export needs the onnx package", name="onnx")
    print(f"Exporting {checkpoint} to ONNX once (about 15 s); kept at {out.parent}.")
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


class OnnxTransformer(torch.nn.Module):
    """Stands in for the ``AutoModel`` inside a SentenceTransformer: same inputs, ``last_hidden_state`` out."""

    def __init__(self, session, config, backend: str):
        super().__init__()
        self.session, self.config, self.backend = session, config, backend
        self.input_names = [i.name for i in session.get_inputs()]

    def forward(self, input_ids, attention_mask, token_type_ids=None, **_):
        """``{"last_hidden_state": (batch, tokens, dim)}``, as the transformer it stands in for returns."""
        given = {"input_ids": input_ids, "attention_mask": attention_mask,
                 "token_type_ids": torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids}
        feeds = {k: given[k].cpu().numpy().astype("int64") for k in self.input_names}
        return {"last_hidden_state": torch.from_numpy(self.session.run(["last_hidden_state"], feeds)[0])}
