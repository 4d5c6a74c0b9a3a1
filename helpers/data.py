"""Load the course corpus, the small demo corpus, or a user's own exports, all in one schema.

A user's file may be a Scopus CSV, a CSV in the course schema, OpenAlex works, a Web of Science export,
RIS or BibTeX (``helpers.formats`` reads them); several files are merged without duplicates.
Downloaded files are verified against SHA-256 checksums; source files are only ever read.
"""
from __future__ import annotations

import collections
import csv
import io
import os
import re
import tempfile
import unicodedata
import warnings
from pathlib import Path

import pandas as pd

from helpers import formats
from helpers.cache import REPO_ROOT, sha256_file
from helpers.text import doi_key, record_text

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
            corrupt = error  # re-download below; the file there is kept aside, never overwritten
    aside = _set_aside(cached) if corrupt else None
    try:
        _download(url, cached, expected_sha256)
    except ValueError as error:
        if aside:
            aside.replace(cached)  # nothing came in its place: the file goes back where it was
        raise ValueError(f"{name}: checksum mismatch: the download from {url} is not the expected file ({error}).") from None
    except OSError as error:  # requests' errors are OSErrors too
        if aside:
            aside.replace(cached)
        if corrupt:
            raise ValueError(f"{corrupt} Re-downloading failed too ({download_problem(error)}).") from None
        raise FileNotFoundError(
            f"{name}: no local copy, and the download failed ({download_problem(error)}). Tried {url}. Point "
            "SCISCI_DATA_DIR at a folder that holds the course data (e.g. `export SCISCI_DATA_DIR=../shared/data`) "
            f"or place the file at {cached}."
        ) from None
    if aside:
        print(f"{cached} was not the course's file (edited or damaged): it is kept as {aside.name} beside it, "
              "and the verified course file is now in its place. To work on your own version, load it by its new name.")
    return cached


def download_problem(error: OSError) -> str:
    """Why a download failed, in a few words: the server's HTTP status, "no connection" or "timed out"."""
    import requests  # installed with pooch

    status = getattr(getattr(error, "response", None), "status_code", None)
    if status:
        return f"HTTP {status}"
    if isinstance(error, requests.Timeout):
        return "timed out"
    if isinstance(error, requests.ConnectionError):
        return "no connection"
    return type(error).__name__


def _set_aside(path: Path) -> Path:
    """Rename ``path`` to the first free ``<name>.orig``, ``<name>.orig2``, ...; never over an existing file."""
    for number in range(1, 100):
        aside = path.with_name(path.name + (".orig" if number == 1 else f".orig{number}"))
        if not aside.exists():
            path.rename(aside)
            return aside
    raise ValueError(f"{path} is not the course's file and {path.name}.orig ... .orig99 all exist: move them "
                     "elsewhere (they may be your edits) and try again.")


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
    """Paths of the course's article PDFs, each verified; a file missing, unreachable or failing its check
    is named and left out, or with ``include_missing`` kept (where it would be), so a reader reports it.

    Verified by checksum, or for the three without one (``ARTICLES_WITHOUT_CHECKSUM``) by their structure: a
    ``%PDF-`` header, an ``%%EOF`` end and an article's size, so a half-downloaded copy is never used. Prints
    how many are available and one short line per missing file (why, in a few words); a download folder
    this call made and left empty is removed again.
    """
    sums = {n: s for n, s in course_checksums().items() if n.startswith(ARTICLES_FOLDER + "/")}
    sums.update({f"{ARTICLES_FOLDER}/{n}": None for n in ARTICLES_WITHOUT_CHECKSUM})
    new_folders = _missing_folders(data_dir() / ARTICLES_FOLDER)
    paths, problems = [], []
    for name, digest in sorted(sums.items()):
        try:
            paths.append(fetch_file(name, digest) if digest else _fetch_whole_pdf(name))
        except (FileNotFoundError, ValueError) as error:
            problems.append(f"  {Path(name).name}: {_first_clause(error)}")
            if include_missing:
                paths.append(data_dir() / name)
    for folder in new_folders:  # deepest first; only folders this call made, and only when empty
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    print(f"{len(sums) - len(problems)} of the course's {len(sums)} articles available.")
    if problems:
        kept = " (kept in the list, so that reading them reports them)" if include_missing else ""
        print(f"{len(problems)} missing{kept}:\n" + "\n".join(problems))
    return paths


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _first_clause(error: Exception) -> str:
    """An error's message without the file's path before it, cut at its first clause ("damaged PDF")."""
    return _short(str(error).split(": ", 1)[-1])


def _short(text: str) -> str:
    """``text`` up to its first ". ", "; " or ": ", without a final full stop."""
    return re.split(r"[.;:] ", text, maxsplit=1)[0].rstrip(".")


# A smaller "PDF" is an error page or a stub, not an article (the course's smallest article is 147 KiB).
MIN_ARTICLE_BYTES = 10_000


def _pdf_problem(path: Path) -> str | None:
    """Why the file at ``path`` is not a whole article PDF, or None."""
    from helpers.pdfs import pdf_damage  # here, not above: PyMuPDF takes seconds to import

    data = path.read_bytes()
    too_small = f"only {len(data):,} bytes, too small for an article" if len(data) < MIN_ARTICLE_BYTES else None
    return pdf_damage(data) or too_small


def _fetch_whole_pdf(name: str) -> Path:
    """``fetch_file`` for a course PDF without a checksum, checked by ``_pdf_problem`` instead: the mirror's
    copy, else the local one, else a download. A damaged local copy stays until a whole download comes, then
    is kept aside as ``.orig``, as ``fetch_file`` does."""
    url = COURSE_URL + name
    mirror = os.environ.get("SCISCI_DATA_DIR")
    if mirror and (Path(mirror) / name).is_file():
        path = Path(mirror) / name
        if problem := _pdf_problem(path):
            raise ValueError(f"{path}: {problem}. The folder named by SCISCI_DATA_DIR holds a damaged copy.")
        return path
    target, damage = data_dir() / name, None
    if target.is_file():
        if not (damage := _pdf_problem(target)):
            return target
        print(f"{target}: {damage}; downloading it again.")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=target.parent) as folder:
        fresh = Path(folder) / target.name
        try:
            _download(url, fresh, None)
        except OSError as error:  # requests' errors are OSErrors too
            if damage:
                raise ValueError(f"{target}: {_short(damage)}, and downloading it again failed "
                                 f"({download_problem(error)}).") from None
            raise FileNotFoundError(f"{name}: no local copy, and the download failed ({download_problem(error)}). "
                                    f"Tried {url}. Point SCISCI_DATA_DIR at a folder that holds the course data.") from None
        if problem := _pdf_problem(fresh):
            raise ValueError(f"{name}: the download is not a whole PDF ({_short(problem)}). It came from {url}.")
        aside = _set_aside(target) if damage else None
        fresh.replace(target)
    if aside:
        print(f"{target} is now the whole course file; the damaged copy is kept as {aside.name} beside it.")
    return target


def doi_from_filename(name: str) -> str | None:
    """The DOI in a course PDF's file name, or None: ``paper_10.1007_s11192-021-04069-9.pdf`` -> ``10.1007/s11192-021-04069-9``.

    Only the ``_`` after the prefix ``10.NNNN`` stands for ``/``; later ones are the DOI's (``...-22028-9_22``).
    """
    match = re.fullmatch(r"(?:paper_)?(10\.\d{4,9})_(.+?)(?:\.pdf)?", str(name).split("/")[-1], flags=re.IGNORECASE)
    return f"{match.group(1)}/{match.group(2)}" if match else None


def read_text(path: str | Path) -> str:
    """The text of an export, decoded (``formats.decode_text``). Raises ``FileNotFoundError``/``ValueError``
    naming the file when it is missing, empty or binary."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file.")
    raw = path.read_bytes()
    if not raw.strip():
        raise ValueError(f"{path}: the file is empty.")
    if b"\x00" in raw[:4096] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValueError(f"{path}: this is not a CSV file or another text export (it holds binary data).")
    return formats.decode_text(raw, str(path))


def read_csv_robustly(path: str | Path, text: str | None = None) -> pd.DataFrame:
    """Read a CSV exactly as stored, whatever its encoding (UTF-8 with or without BOM, UTF-16, cp1252).

    Raises ``FileNotFoundError``/``ValueError`` naming the file for a missing, empty, undecodable or non-CSV
    file, or one separated by semicolons or tabs; warns about bytes that are not UTF-8 and a cut-off last row.
    """
    path = Path(path)
    text = read_text(path) if text is None else text
    header = text.split("\n", 1)[0]
    for separator, name in ((";", "semicolons (;)"), ("\t", "tabs")):
        if header.count(separator) > header.count(","):
            raise ValueError(f"{path}: its columns are separated by {name}, not commas. Save it as a comma-separated "
                             f"CSV (in Excel: CSV UTF-8), or read it with pandas.read_csv(path, sep={separator!r}) "
                             "and pass the table to normalise_corpus.")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=["", "NA", "NaN"])
    except (pd.errors.ParserError, csv.Error) as error:
        cut = " It ends inside a quoted field: the file looks truncated." if "EOF" in str(error) else ""
        raise ValueError(f"{path}: not a readable CSV ({error}).{cut}") from None
    if frame.shape[1] < 2:
        raise ValueError(f"{path}: not a CSV table (found {frame.shape[1]} column).")
    frame.columns = [str(c).strip() for c in frame.columns]
    last = collections.deque(csv.reader(io.StringIO(text)), maxlen=1)
    if len(frame) and last and len(last[0]) < frame.shape[1]:
        warnings.warn(f"{path}: the last row has {len(last[0])} of {frame.shape[1]} fields: the file looks cut off, "
                      "and that record's missing fields are left empty. Export the file again to have it whole.",
                      stacklevel=2)
    return frame


def parse_keywords(value) -> list[str]:
    """Keywords as a list of lower-case strings: ``"A; B"`` or a list -> ``["a", "b"]``; missing -> ``[]``."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
        return [str(k).strip().lower() for k in value if str(k).strip()]
    if not isinstance(value, str):
        return []
    return [k.strip().lower() for k in value.split(";") if k.strip()]


def normalise_corpus(frame: pd.DataFrame, source: str = "the corpus", blank_citations: int | None = 0) -> pd.DataFrame:
    """Bring a course-schema or raw Scopus frame to the course schema with ``text`` and ``has_abstract``.

    ``blank_citations``: what a missing citation count means: 0 (Scopus leaves "Cited by" blank when there
    are none) or None (unknown: kept missing, as for a format that has no citation counts).
    """
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
    citations = pd.to_numeric(out["citations"], errors="coerce")
    if blank_citations is not None or citations.notna().all():
        out["citations"] = citations.fillna(blank_citations or 0).astype("int64")
    else:
        out["citations"] = citations.astype("Int64")
    out["has_abstract"] = (out["abstract"] != "") & (out["abstract"] != NO_ABSTRACT)
    out["text"] = record_text(out["title"], out["abstract"].where(out["has_abstract"], ""))
    if (out["title"] == "").all():
        raise ValueError(f"{source}: every title is empty.")
    extra = [c for c in out.columns if c not in CORPUS_COLUMNS + ["text", "has_abstract"]]
    return out[CORPUS_COLUMNS + ["text", "has_abstract"] + extra].reset_index(drop=True)


def load_corpus(source: str | Path | list = "course") -> pd.DataFrame:
    """The corpus as a DataFrame, one row per record.

    ``source``: ``"course"`` (1,124 Scopus records), ``"demo"`` (150 synthetic records in 5 themes, with a
    ``theme`` column), the path of an export (a Scopus CSV or a CSV in the course schema, OpenAlex works as
    JSON or JSON Lines, Web of Science plain text or tab-delimited, RIS, BibTeX: recognised by content), or a
    list of paths, merged by ``merge_corpora`` (duplicates removed, a ``source`` column, a printed report).
    Columns: ``CORPUS_COLUMNS`` + ``text`` (title and abstract) + ``has_abstract``, then the format's own;
    ``keywords`` are lists of lower-case strings. A field an export lacks is empty, never guessed.
    """
    if isinstance(source, (list, tuple)):
        if not source:
            raise ValueError("load_corpus got an empty list: give the paths of one or more exports.")
        names = [Path(p).name for p in source]
        labels = [n if names.count(n) == 1 else str(p) for n, p in zip(names, source)]
        loaded = {label: _load_export(Path(p), alone=False) for label, p in zip(labels, source)}
        return merge_corpora({f"{label} ({formats.FORMAT_NAMES[kind]})": frame for label, (frame, kind) in loaded.items()})
    frame, kind = _load_export(course_csv_path() if str(source) == "course" else DEMO_CSV if str(source) == "demo"
                               else Path(source))
    if kind != "csv":
        empty = [c for c in CORPUS_COLUMNS if not _filled(frame, c).any()]
        print(f"Read {len(frame):,} records from {Path(source).name} ({formats.FORMAT_NAMES[kind]})"
              + (f"; empty in every record (the export lacks them): {', '.join(empty)}." if empty else "."))
    return frame


def _load_export(path: Path, alone: bool = True) -> tuple[pd.DataFrame, str]:
    """One file in the course schema, and its format (a key of ``formats.FORMAT_NAMES``); loaded ``alone``
    (not merged, which removes them), its duplicate records are reported."""
    text = read_text(path)
    kind = formats.detect_format(text)
    if kind == "csv":
        frame = read_csv_robustly(path, text)
        if frame.empty:
            raise ValueError(f"{path}: the file has a header but no records.")
        frame = normalise_corpus(frame, source=str(path))
    else:
        frame = normalise_corpus(formats.read_export(text, str(path), kind), source=str(path), blank_citations=None)
    if alone:
        _warn_duplicates(frame, str(path))
    return frame, kind


def normalise_title(title) -> str:
    """A title for comparison: accents, case, punctuation and spacing removed (``"Café-Culture!"`` -> ``"cafe culture"``)."""
    if not isinstance(title, str):
        return ""
    letters = "".join(c for c in unicodedata.normalize("NFKD", title) if not unicodedata.combining(c))
    return " ".join(re.sub(r"[\W_]+", " ", letters.casefold()).split())


def _warn_duplicates(frame: pd.DataFrame, name: str) -> None:
    """Warn when records of one file share an EID (Scopus's record id) or a DOI."""
    for column, values in (("EID", frame.get("EID")), ("DOI", frame["doi"].map(doi_key))):
        if values is None:
            continue
        repeated = values[values.notna() & (values != "") & values.duplicated(keep=False)]
        if len(repeated):
            first = repeated.iloc[0]
            rows = ", ".join(str(i + 1) for i in repeated.index[repeated == first])
            warnings.warn(f"{name}: {len(repeated)} records share their {column} with another (e.g. {first} in "
                          f"records {rows}); load_corpus([path]) keeps one of each.", stacklevel=2)


def _filled(frame: pd.DataFrame, column: str) -> pd.Series:
    """Whether each record has ``column`` (a non-empty string or list, a number; an abstract only if real)."""
    if column == "abstract" and "has_abstract" in frame:
        return frame["has_abstract"].astype(bool)
    values = frame[column]
    if column == "keywords":
        return values.map(len) > 0
    return values.notna() & (values.astype(str).str.strip() != "")


def merge_corpora(corpora: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Course-schema frames (source name -> frame) as one corpus without duplicates, with a ``source`` column.

    Duplicates: the same DOI (``text.doi_key``), then the same title and year (``normalise_title``) unless
    both records have different DOIs. Of each group the record with most fields filled is kept (the first
    given on a tie). Prints the records per source, the duplicates removed and the share of each field filled.
    """
    merged = pd.concat([f.assign(source=name) for name, f in corpora.items()], ignore_index=True)
    filled = pd.DataFrame({c: _filled(merged, c) for c in CORPUS_COLUMNS})
    merged = merged.iloc[(-filled.sum(axis=1)).argsort(kind="stable")]  # most complete first
    doi = merged["doi"].map(doi_key).fillna("")
    same_doi = (doi != "") & doi.duplicated()
    rest = merged[~same_doi]
    key = rest["title"].map(normalise_title) + " | " + rest["year"].astype(str)
    candidates = (rest["title"].map(normalise_title) != "") & rest["year"].notna() & key.duplicated(keep=False)
    same_title = []
    for _, group in rest[candidates].groupby(key[candidates], sort=False):
        kept_dois = []
        for index, record_doi in zip(group.index, doi[group.index]):
            if kept_dois and (record_doi == "" or "" in kept_dois):
                same_title.append(index)  # one of the two has no DOI, so nothing says they differ
            else:
                kept_dois.append(record_doi)
    out = rest.drop(index=same_title).sort_index()
    _print_merge_report(corpora, out, int(same_doi.sum()), len(same_title))
    return out.reset_index(drop=True)


def _print_merge_report(corpora: dict[str, pd.DataFrame], merged: pd.DataFrame, by_doi: int, by_title: int) -> None:
    print(f"Merged {len(corpora)} export(s) into {len(merged):,} records:")
    for name, frame in corpora.items():
        print(f"  {name}: {len(frame):,} records")
    print(f"Duplicates removed: {by_doi + by_title:,} ({by_doi:,} with the same DOI, {by_title:,} with the same "
          "title and year). Share of records with each field (0% = the export lacks it):")
    shares = {name: {c: _filled(f, c).mean() for c in CORPUS_COLUMNS} for name, f in corpora.items()}
    shares["merged"] = {c: _filled(merged, c).mean() for c in CORPUS_COLUMNS}
    table = pd.DataFrame(shares).rename(columns=lambda n: n.split(" (")[0])
    print(table.map(lambda share: f"{share:.0%}").to_string())
