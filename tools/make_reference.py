"""Write the course's reference results from a fresh run of the notebooks (``make reference``), never by hand.

    python -m tools.make_reference [OUTPUTS]     # default: outputs/ of the last `make run`

Reads notebook 2's ``science_of_science_clusters.csv`` and notebook 3's ``pdf_extraction.csv`` and writes
``helpers/reference/``: each record's cluster by its stable id, each PDF's combined answer per question,
and the environment they were made in.
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


def main(argv=None) -> None:
    """Write helpers/reference/ from the executed notebooks' files in OUTPUTS (the command line)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outputs", nargs="?", type=Path, default=None, help="folder of the executed notebooks' files")
    folder = parser.parse_args(argv).outputs or outputs_dir()
    import pandas as pd

    clustered = load_corpus(folder / CLUSTERS_FILE)
    answers = pd.read_csv(folder / "pdf_extraction.csv", dtype=str, keep_default_na=False)
    REFERENCE_DIR.mkdir(exist_ok=True)
    pd.DataFrame({"record_id": record_ids(clustered), "cluster": clustered["cluster"].astype(int)}).to_csv(
        REFERENCE_CLUSTERS, index=False)
    answers[["file", "question", "combined"]].replace("", "None").to_csv(REFERENCE_ANSWERS, index=False)
    REFERENCE_ENVIRONMENT.write_text(json.dumps(environment(seed=COURSE_SEED), indent=1) + "\n", encoding="utf-8")
    print(f"Wrote {REFERENCE_CLUSTERS.name} ({len(clustered)} records), {REFERENCE_ANSWERS.name} "
          f"({len(answers)} answers) and {REFERENCE_ENVIRONMENT.name} to {REFERENCE_DIR}.")


if __name__ == "__main__":
    main()
