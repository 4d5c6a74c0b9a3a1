"""Stage ``embed``: the course abstracts embedded with SentenceTransformer's defaults against ``embed_texts``."""
from __future__ import annotations

from pathlib import Path

from bench.common import Stage, course_texts, device_and_threads, peak_mib, timed, vector_agreement
from bench.tables import measured_when, num, ratio, variant_table


def variants(device: str) -> list[str]:
    """The baseline, ``embed_texts`` on torch, then larger batches on a GPU or the ONNX backends on a CPU."""
    return ["baseline", "torch"] + (["torch:256"] if device == "cuda" else ["onnx", "onnx-int8:8"])


def job(variant: str, n: int | None, out: str) -> dict:
    """Embed the course abstracts: ``baseline`` (SentenceTransformer defaults) or ours (``embed_texts``)."""
    import numpy as np

    texts = course_texts(n)
    info = device_and_threads()
    if variant == "baseline":
        from sentence_transformers import SentenceTransformer

        from helpers.models import DEFAULT_EMBEDDER, packaged_path

        # What a learner writes: SentenceTransformer("all-MiniLM-L6-v2").encode(texts); the hub is
        # unreachable here, so the same model comes from its packaged copy.
        model, load_s, _ = timed(SentenceTransformer, str(packaged_path(DEFAULT_EMBEDDER) or DEFAULT_EMBEDDER))
        vectors, wall, cpu = timed(model.encode, texts)
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        settings = "SentenceTransformer defaults (batch 32, fp32)"
    else:
        from helpers.embeddings import CPU_BATCH_SIZE, GPU_BATCH_SIZE, embed_texts
        from helpers.models import load_embedder

        backend, _, batch = variant.partition(":")
        batch_size = int(batch) if batch else None  # None: embed_texts' default for the device
        model, load_s, _ = timed(load_embedder, backend=backend)
        vectors, wall, cpu = timed(embed_texts, texts, batch_size=batch_size, cache=False, backend=backend)
        # An ONNX backend's module has no torch parameters to read the dtype from.
        dtype = ({"onnx-int8": "int8", "onnx": "float32 (ONNX Runtime)"}.get(backend)
                 or str(next(model.parameters()).dtype).replace("torch.", ""))
        shown = batch_size or (CPU_BATCH_SIZE if info["device"] == "cpu" else GPU_BATCH_SIZE)
        given = "" if batch_size is None else f", batch_size={batch_size}"
        settings = f"embed_texts(backend={backend!r}{given}): batches of {shown}, {dtype}"
    np.save(out, vectors.astype(np.float32))
    warm_s = None
    if variant != "baseline":
        embed_texts(texts, batch_size=batch_size, backend=backend)  # fills the cache
        _, warm_s, _ = timed(embed_texts, texts, batch_size=batch_size, backend=backend)
    return {"n": len(texts), "seconds": wall, "cpu_seconds": cpu, "docs_per_s": len(texts) / wall,
            "load_seconds": load_s, "warm_seconds": warm_s, "settings": settings, "peak_mib": peak_mib(), **info}


def summarise(tmp: Path, results: dict) -> dict:
    """Per-record cosine of each variant's vectors to the baseline's."""
    return {"agreement": vector_agreement(tmp, "embed", results, lambda variant: "baseline")}


def report(st: dict) -> tuple[list[str], list[tuple]]:
    """The embedding table (speed, agreement, cached re-run) and the 2x target of each variant."""
    v = st["variants"]
    base = v.get("baseline", {})
    agree = st.get("agreement", {})
    lines = [f"## Embedding ({base.get('n', '?')} course abstracts, all-MiniLM-L6-v2)", "", measured_when(st), ""]
    cols = [("settings", lambda r: r.get("settings", "")), ("docs/s", lambda r: num(r.get("docs_per_s"))),
            ("wall s", lambda r: num(r.get("seconds"))), ("CPU s", lambda r: num(r.get("cpu_seconds"))),
            ("ratio (wall)", lambda r: ratio(r.get("docs_per_s"), base.get("docs_per_s"))),
            ("ratio (CPU)", lambda r: ratio(base.get("cpu_seconds"), r.get("cpu_seconds"))),
            ("min / mean cosine to baseline", lambda r: "-"),
            ("cached re-run s", lambda r: num(r.get("warm_seconds"), 3)),
            ("peak MiB", lambda r: num(r.get("peak_mib"), 0))]
    rows = variant_table(st, cols)
    for i, name in enumerate(v):
        a = agree.get(name)
        if a:
            rows[2 + i] = rows[2 + i].replace(" | - | ", f" | {a['min_cosine']:.4f} / {a['mean_cosine']:.4f} "
                                              f"({a['below_0.99']} below 0.99) | ", 1)
    lines += rows + [""]
    targets = []
    for name, r in v.items():
        if name == "baseline" or "docs_per_s" not in r or not base.get("docs_per_s"):
            continue
        speedup = r["docs_per_s"] / base["docs_per_s"]
        cos = agree.get(name, {}).get("min_cosine")
        targets.append((f"Embedding `{name}` >= 2x baseline docs/s with min cosine >= 0.99",
                        f"{speedup:.2f}x, min cosine {num(cos, 4)}", speedup >= 2 and (cos or 0) >= 0.99))
    return lines, targets


STAGE = Stage("embed", job=job, variants=variants, report=report, quick_size=64, writes_file=True,
              summarise=summarise)
