"""Write the course's reference results from a fresh run of the notebooks (``make reference``), never by hand.

    python -m tools.make_reference [OUTPUTS]     # default: outputs/ of the last `make run`

Reads notebook 2's ``science_of_science_clusters.csv`` and notebook 3's ``pdf_extraction.csv`` and writes
``helpers/reference/``: each record's cluster by its stable id, each PDF's combined answer per question,
and the environment they were made in (with the embedder notebook 2 uses). A file of a notebook that has
not run is skipped, and its reference left as it was; the command says which.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from helpers.cache import outputs_dir
from helpers.clustering import CLUSTERS_FILE, COURSE_SEED
from helpers.data import load_corpus
from helpers.reference import (
    REFERENCE_ANSWERS,
    REFERENCE_CLUSTERS,
    REFERENCE_DIR,
    REFERENCE_ENVIRONMENT,
    environment,
    record_ids,
)

ANSWERS_FILE = "pdf_extraction.csv"


def course_environment() -> dict:
    """``environment`` with notebook 2's seed and its embedder's weights and dtype, as notebook 2 prints it."""
    from helpers.models import DEFAULT_EMBEDDER, load_embedder, model_info

    embedder = model_info(load_embedder(DEFAULT_EMBEDDER))
    return environment(seed=COURSE_SEED, embedder=embedder.checkpoint, embedder_dtype=embedder.dtype)


def main(argv=None) -> int:
    """Write helpers/reference/ from the executed notebooks' files in OUTPUTS (the command line); 1 if none found."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outputs", nargs="?", type=Path, default=None, help="folder of the executed notebooks' files")
    folder = parser.parse_args(argv).outputs or outputs_dir()
    import pandas as pd

    written, skipped = [], []
    if (folder / CLUSTERS_FILE).is_file():
        clustered = load_corpus(folder / CLUSTERS_FILE)
        ids = record_ids(clustered)
        if not ids.is_unique:
            raise SystemExit(f"{CLUSTERS_FILE}: {int(ids.duplicated().sum())} records share an id; no reference written")
        REFERENCE_DIR.mkdir(exist_ok=True)
        pd.DataFrame({"record_id": ids, "cluster": clustered["cluster"].astype(int)}).to_csv(REFERENCE_CLUSTERS, index=False)
        written.append(f"{REFERENCE_CLUSTERS.name} ({len(clustered)} records)")
    else:
        skipped.append(f"{REFERENCE_CLUSTERS.name} (no {CLUSTERS_FILE}: run notebook 2)")
    if (folder / ANSWERS_FILE).is_file():
        answers = pd.read_csv(folder / ANSWERS_FILE, dtype=str, keep_default_na=False)
        REFERENCE_DIR.mkdir(exist_ok=True)
        answers[["file", "question", "combined"]].replace("", "None").to_csv(REFERENCE_ANSWERS, index=False)
        written.append(f"{REFERENCE_ANSWERS.name} ({len(answers)} answers)")
    else:
        skipped.append(f"{REFERENCE_ANSWERS.name} (no {ANSWERS_FILE}: run notebook 3)")
    if not written:
        print(f"Nothing written: {folder} holds neither {CLUSTERS_FILE} nor {ANSWERS_FILE}. Run `make run` first.")
        return 1
    REFERENCE_ENVIRONMENT.write_text(json.dumps(course_environment(), indent=1) + "\n", encoding="utf-8")
    written.append(REFERENCE_ENVIRONMENT.name)
    print(f"Wrote {', '.join(written)} to {REFERENCE_DIR} from {folder}.")
    for line in skipped:
        print(f"Skipped {line}; the committed file, if any, is left as it was.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
