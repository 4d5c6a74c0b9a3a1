"""Stage ``extract``: "bibliometric?" of every course PDF, whole first page per call against ``ask_articles``."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.common import Stage, device_and_threads, fresh_cache, peak_mib, timed
from bench.tables import measured_when, num, ratio, variant_table


def variants(device: str) -> list[str]:
    """The first-page baseline, ``ask_articles`` embedding every passage, and ``ask_articles`` as it runs now."""
    return ["baseline", "all-passages", "ours"]


def job(variant: str, n: int | None) -> dict:
    """Ask "bibliometric?" of every course PDF: whole first page per call, or ``ask_articles``, embeddings cold.

    "all-passages" is the path before the lexical prefilter (every passage embedded);
    "ours" embeds only the 12 passages per article that share most words with the definition.
    """
    from helpers.data import fetch_articles
    from helpers.evaluation import load_annotations
    from helpers.extraction import EvidenceSettings, ask_articles, course_judge
    from helpers.generation import make_messages
    from helpers.models import load_generator
    from helpers.pdfs import read_articles
    from helpers.prompts import EXTRACTION_SYSTEM, get_question

    # Cold embeddings too: a cache of this job's own, with only the converted models linked in.
    os.environ["SCISCI_CACHE"] = str(fresh_cache(Path(tempfile.mkdtemp(prefix="bench-extract-")), shared=("models",)))
    paths = fetch_articles()[: n or None]
    pages, status = read_articles(paths)
    pipe = load_generator()
    question = get_question("bibliometric")
    if variant == "baseline":
        def run():
            answers = []
            for file in status["file"]:  # the same order as ask_articles' rows
                group = pages[pages["file"] == file]
                if group.empty:
                    answers.append(None)
                    continue
                first = group.sort_values("page")["text"].iloc[0]
                user = (f"{question.question}\nDefinition: {question.definition}\n\nArticle (first page):\n{first}"
                        "\n\nAnswer TRUE or FALSE.")
                out = pipe(make_messages(user, EXTRACTION_SYSTEM), max_new_tokens=8, do_sample=False)
                answers.append(out[0]["generated_text"][-1]["content"].strip())
            return answers

        settings = "whole first page + question, pipe(..., max_new_tokens=8), one call per article"
    else:
        candidates = None if variant == "all-passages" else 12
        # Fitted once, outside the timing, with the settings it judges (ask_articles refuses any other judge).
        judge = course_judge(question, generator=False, settings=EvidenceSettings(candidates=candidates))

        def run():  # generations start empty: this job's cache holds only the models
            return ask_articles((pages, status), question, generator=pipe, judge=judge)["combined"].tolist()

        settings = (f"ask_articles, embedding {'every passage' if candidates is None else '12 BM25 candidates per article'}"
                    ", top-3, constrained choice, batched")
    answers, wall, cpu = timed(run)
    n_ok = int((status["status"] == "ok").sum())
    # Accuracy on the hand labels of the PDFs (test-only: nothing was fitted on them); free text counts by its first word.
    labels = load_annotations().query("source == 'pdf' and question_id == 'bibliometric'").set_index("file")["label"]
    said = {f: "TRUE" if str(a).strip().upper().startswith("TRUE") else "FALSE"
            for f, a in zip(status["file"], answers)} if len(answers) == len(status) else {}
    right = [said[f] == label for f, label in labels.items() if f in said]
    return {"n": n_ok, "seconds": wall, "cpu_seconds": cpu, "articles_per_s": n_ok / wall, "answers": answers,
            "accuracy": sum(right) / len(right) if right else None, "n_labelled": len(right),
            "settings": settings, "peak_mib": peak_mib(), **device_and_threads()}


def report(st: dict) -> tuple[list[str], list[tuple]]:
    """The extraction table (articles/s, accuracy on the labelled PDFs) and ours against embedding every passage."""
    base = st["variants"].get("baseline", {})
    lines = [f"## PDF extraction ({base.get('n', '?')} readable course PDFs, question \"bibliometric\")", "",
             measured_when(st) + " Embeddings are cold in every variant (a cache of the job's own); the judge of "
             "step 5 is fitted before the timing. `all-passages` is the path before the lexical prefilter.", ""]
    cols = [("settings", lambda r: r.get("settings", "")), ("wall s", lambda r: num(r.get("seconds"))),
            ("articles/s", lambda r: num(r.get("articles_per_s"), 2)),
            ("ratio", lambda r: ratio(r.get("articles_per_s"), base.get("articles_per_s"))),
            ("accuracy on the labelled PDFs", lambda r: f"{r['accuracy']:.2f} (n={r['n_labelled']})"
             if r.get("accuracy") is not None else "-"),
            ("peak MiB", lambda r: num(r.get("peak_mib"), 0))]
    lines += variant_table(st, cols) + [""]
    before, ours = st["variants"].get("all-passages", {}), st["variants"].get("ours", {})
    if before.get("seconds") and ours.get("seconds"):
        same = sum(a == b for a, b in zip(ours.get("answers", []), before.get("answers", [])))
        lines += [f"Ours against embedding every passage (the path before): "
                  f"**{before['cpu_seconds'] / ours['cpu_seconds']:.2f}x** "
                  f"in CPU seconds ({num(before['cpu_seconds'])} -> {num(ours['cpu_seconds'])}), "
                  f"{before['seconds'] / ours['seconds']:.2f}x in wall seconds ({num(before['seconds'])} -> "
                  f"{num(ours['seconds'])}: wall time follows the shared machine's load); "
                  f"{same}/{len(ours.get('answers', []))} combined answers the same.", ""]
    return lines, []


STAGE = Stage("extract", job=job, variants=variants, report=report, quick_size=3)
