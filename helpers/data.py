"""Load the course corpus, a user's own Scopus export, or the small demo corpus, all in one schema.

Downloaded files are verified against SHA-256 checksums; source files are only ever read.
"""
from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import pandas as pd

from helpers.cache import REPO_ROOT, sha256_file

# The course's public repository at a fixed commit (its files match course_data.sha256),
# so an edit upstream can never break the checksums for learners.
COURSE_COMMIT = "c0b88a1a01f74654e70278ead71547e5dc885655"
COURSE_URL = f"https://raw.githubusercontent.com/Zak-Hussain/LLM4SciSci/{COURSE_COMMIT}/"
COURSE_CSV = "science_of_science.csv"
ARTICLES_FOLDER = "SciSci_articles"
# Listed by the course but absent from the data mirror, so no checksum is on record.
ARTICLES_WITHOUT_CHECKSUM = (
    "paper_10.1007_s11192-021-03984-1.pdf",
    "paper_10.1007_s11192-024-05013-3.pdf",
    "paper_10.1007_s41109-024-00618-2.pdf",
)
NO_ABSTRACT = "[No abstract available]"
CORPUS_COLUMNS = [
    "authors", "title", "abstract", "keywords", "outlet", "outlet_type",
    "year", "citations", "open_access", "language", "doi",
]
REQUIRED_COLUMNS = ["title", "abstract", "year", "citations"]
# Raw Scopus export column -> course column.
SCOPUS_COLUMNS = {
    "Authors": "authors",
    "Author(s) ID": "authors_id",
    "Affiliations": "affiliations",
    "Title": "title",
    "Abstract": "abstract",
    "Author Keywords": "keywords",
    "Source title": "outlet",
    "Document Type": "outlet_type",
    "Year": "year",
    "Cited by": "citations",
    "Open Access": "open_access",
    "Language of Original Document": "language",
    "DOI": "doi",
}
DEMO_CSV = Path(__file__).with_name("demo_corpus.csv")
CHECKSUMS = Path(__file__).with_name("course_data.sha256")


def course_checksums() -> dict[str, str]:
    """Known SHA-256 of each course file, keyed by path relative to the data folder."""
    pairs = (line.split(maxsplit=1) for line in CHECKSUMS.read_text().splitlines() if line.strip())
    return {name.strip(): digest for digest, name in pairs}


def data_dir() -> Path:
    """Where downloaded course files are kept: the repository root (git-ignored)."""
    return Path(os.environ.get("SCISCI_DOWNLOAD_DIR", REPO_ROOT))


def fetch_file(name: str, expected_sha256: str | None, url: str | None = None) -> Path:
    """Path to a verified course file ``name`` (e.g. ``SciSci_articles/paper_x.pdf``).

    From ``$SCISCI_DATA_DIR`` (a mirror, used in place), else the copy in ``data_dir()``, else downloaded
    there. Raises ``ValueError`` on a checksum mismatch, ``FileNotFoundError`` with neither copy nor network.
    """
    url = url or COURSE_URL + name
    mirror = os.environ.get("SCISCI_DATA_DIR")
    if mirror and (Path(mirror) / name).is_file():
        path = Path(mirror) / name
        _verify(path, expected_sha256, hint="The folder named by SCISCI_DATA_DIR holds a different file.")
        return path
    cached, corrupt = data_dir() / name, None
    if cached.is_file():
        try:
            _verify(cached, expected_sha256)
            return cached
        except ValueError as error:
            corrupt = error  # re-download below; the bad copy is replaced only by a verified one
    try:
        _download(url, cached, expected_sha256)
    except ValueError as error:
        raise ValueError(f"{name}: checksum mismatch: the download from {url} is not the expected file ({error}).") from None
    except OSError as error:  # requests' errors are OSErrors too
        if corrupt:
            raise ValueError(f"{corrupt} Re-downloading failed too ({error}).") from None
        raise FileNotFoundError(
            f"{name}: no local copy and the download from {url} failed ({error}). Point SCISCI_DATA_DIR at a folder "
            f"that holds the course data (e.g. `export SCISCI_DATA_DIR=../shared/data`) or place the file at {cached}."
        ) from None
    return cached


def _download(url: str, target: Path, expected_sha256: str | None) -> None:
    """Download ``url`` to ``target`` with pooch: retried, with a progress bar, verified before it replaces anything."""
    import pooch

    pooch.get_logger().setLevel("WARNING")  # pooch announces every download; the progress bar says enough
    base, name = url.rsplit("/", 1)
    known = f"sha256:{expected_sha256}" if expected_sha256 else None
    fetcher = pooch.create(path=target.parent, base_url=base + "/", registry={name: known}, retry_if_failed=2)
    downloaded = Path(fetcher.fetch(name, progressbar=True))
    if downloaded != target:
        downloaded.replace(target)


def _verify(path: Path, expected_sha256: str | None, hint: str = "") -> None:
    if expected_sha256 is not None and (actual := sha256_file(path)) != expected_sha256:
        raise ValueError(f"{path}: checksum mismatch (expected SHA-256 {expected_sha256[:12]}..., "
                         f"got {actual[:12]}...). The file is corrupted or not the course's. {hint}")


def course_csv_path() -> Path:
    """Path to the verified course CSV (1,124 Scopus records), fetched once."""
    return fetch_file(COURSE_CSV, course_checksums()[COURSE_CSV])


def fetch_articles(include_missing: bool = False) -> list[Path]:
    """Paths of the course's article PDFs, each verified; a file missing, unreachable or failing its checksum
    is named and left out, or with ``include_missing`` kept (where it would be), so a reader reports it."""
    sums = {n: s for n, s in course_checksums().items() if n.startswith(ARTICLES_FOLDER + "/")}
    sums.update({f"{ARTICLES_FOLDER}/{n}": None for n in ARTICLES_WITHOUT_CHECKSUM})
    paths, problems = [], []
    for name, digest in sorted(sums.items()):
        try:
            paths.append(fetch_file(name, digest))
        except (FileNotFoundError, ValueError) as error:
            problems.append(f"  {Path(name).name}: {str(error).split('. ')[0]}")
            if include_missing:
                paths.append(data_dir() / name)
    print(f"{len(paths)} of {len(sums)} course articles available.")
    if problems:
        print(f"{len(problems)} not available:\n" + "\n".join(problems))
    return paths


def doi_from_filename(name: str) -> str | None:
    """The DOI in a course PDF's file name, or None: ``paper_10.1007_s11192-021-04069-9.pdf`` -> ``10.1007/s11192-021-04069-9``.

    Only the ``_`` after the prefix ``10.NNNN`` stands for ``/``; later ones are the DOI's (``...-22028-9_22``).
    """
    match = re.fullmatch(r"(?:paper_)?(10\.\d{4,9})_(.+?)(?:\.pdf)?", str(name).split("/")[-1], flags=re.IGNORECASE)
    return f"{match.group(1)}/{match.group(2)}" if match else None


def read_csv_robustly(path: str | Path) -> pd.DataFrame:
    """Read a CSV exactly as stored, whatever its encoding (UTF-8 with or without BOM, UTF-16, cp1252).

    Raises ``FileNotFoundError``/``ValueError`` naming the file for a missing, empty, undecodable or non-CSV file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file.")
    raw = path.read_bytes()
    if not raw.strip():
        raise ValueError(f"{path}: the file is empty.")
    if b"\x00" in raw[:4096] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValueError(f"{path}: this is not a CSV file (it holds binary data).")
    # UTF-16 only with its byte-order mark: without one it would "decode" any bytes.
    encodings = ("utf-16",) if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else ("utf-8-sig", "cp1252")
    for encoding in encodings:
        try:
            text = raw.decode(encoding)
            break
        except UnicodeError:
            pass
    else:
        raise ValueError(f"{path}: unknown text encoding (tried {', '.join(encodings)}); save it as UTF-8 and try again.")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=["", "NA", "NaN"])
    except (pd.errors.ParserError, csv.Error) as error:
        raise ValueError(f"{path}: not a readable CSV ({error}).") from None
    if frame.shape[1] < 2:
        raise ValueError(f"{path}: not a CSV table (found {frame.shape[1]} column).")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def parse_keywords(value) -> list[str]:
    """Keywords as a list of lower-case strings: ``"A; B"`` or a list -> ``["a", "b"]``; missing -> ``[]``."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
        return [str(k).strip().lower() for k in value if str(k).strip()]
    if not isinstance(value, str):
        return []
    return [k.strip().lower() for k in value.split(";") if k.strip()]


def normalise_corpus(frame: pd.DataFrame, source: str = "the corpus") -> pd.DataFrame:
    """Bring a course-schema or raw Scopus frame to the course schema with ``text`` and ``has_abstract``."""
    if set(SCOPUS_COLUMNS) & set(frame.columns) >= {"Title", "Year"}:
        frame = frame.rename(columns=SCOPUS_COLUMNS)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{source}: missing required column(s) {', '.join(missing)}. Expected the course schema "
                         f"({', '.join(CORPUS_COLUMNS)}) or a Scopus export (Title, Abstract, Year, Cited by, ...); "
                         f"found {', '.join(map(str, frame.columns[:15]))}.")
    out = frame.copy()
    for column in CORPUS_COLUMNS:
        if column not in out.columns:
            out[column] = pd.NA
    out["title"] = out["title"].fillna("").astype(str).str.strip()
    out["abstract"] = out["abstract"].fillna("").astype(str).str.strip()
    out["keywords"] = out["keywords"].map(parse_keywords)
    out["year"] = pd.to_numeric(out["year"], errors="coerce").astype("Int64")
    # Scopus leaves "Cited by" blank when a record has no citations.
    out["citations"] = pd.to_numeric(out["citations"], errors="coerce").fillna(0).astype("int64")
    out["has_abstract"] = (out["abstract"] != "") & (out["abstract"] != NO_ABSTRACT)
    ends_sentence = out["title"].str.endswith((".", "?", "!"))
    joined = out["title"] + ends_sentence.map({True: " ", False: ". "}) + out["abstract"]
    out["text"] = joined.where(out["has_abstract"], out["title"])
    if (out["title"] == "").all():
        raise ValueError(f"{source}: every title is empty.")
    extra = [c for c in out.columns if c not in CORPUS_COLUMNS + ["text", "has_abstract"]]
    return out[CORPUS_COLUMNS + ["text", "has_abstract"] + extra].reset_index(drop=True)


def load_corpus(source: str | Path = "course") -> pd.DataFrame:
    """The corpus as a DataFrame, one row per record.

    ``source``: ``"course"`` (1,124 Scopus records), ``"demo"`` (150 synthetic records in 5 themes, with a
    ``theme`` column), or the path of a CSV in the course schema or a raw Scopus export. Columns:
    ``CORPUS_COLUMNS`` + ``text`` (title and abstract) + ``has_abstract``; ``keywords`` are lists of lower-case strings.
    """
    path = course_csv_path() if str(source) == "course" else DEMO_CSV if str(source) == "demo" else Path(source)
    frame = read_csv_robustly(path)
    if frame.empty:
        raise ValueError(f"{path}: the file has a header but no records.")
    return normalise_corpus(frame, source=str(path))
