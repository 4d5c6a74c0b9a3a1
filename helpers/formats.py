"""Bibliographic exports into the course's columns: OpenAlex works, Web of Science, RIS and BibTeX.

``read_export(text, name)`` recognises the format from the content (``detect_format``) and returns one row per
record with the course's columns (authors, title, abstract, keywords as lists, outlet, outlet_type, year,
citations, open_access, language, doi) and a few of the format's own (affiliations, ids). A field the format
does not give stays empty (None), never guessed. ``data.load_corpus`` finishes the schema.

Each format is parsed by the ecosystem's parser: pyalex (abstracts from OpenAlex's inverted index), wosfile
(Web of Science plain text and tab-delimited), rispy (RIS) and bibtexparser 2 (BibTeX, LaTeX decoded).
"""
from __future__ import annotations

import codecs
import csv
import importlib
import io
import json
import logging
import re
import warnings

import pandas as pd

from helpers.text import clean_doi

FORMAT_NAMES = {
    "openalex": "OpenAlex works (JSON)", "openalex-jsonl": "OpenAlex works (JSON Lines)",
    "wos": "Web of Science plain text", "wos-tab": "Web of Science tab-delimited",
    "ris": "RIS", "bibtex": "BibTeX", "csv": "CSV",
}
# Scopus writes "Cited by: 12" into BibTeX's note and "Cited By: 12" into RIS's N1.
_CITED_BY = re.compile(r"cited by:?\s*(\d+)", flags=re.IGNORECASE)
# Lone surrogates that ``errors="surrogateescape"`` makes of bytes that are not UTF-8.
_UNDECODABLE = re.compile("[\udc80-\udcff]")


def parser(module: str, package: str):
    """Import a parser, or say which pip command installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"reading this format needs {package}: `pip install {package}` "
                          "(it is in the course's requirements.txt)") from None


def decode_text(raw: bytes, name: str) -> str:
    """Bytes as text: UTF-16 with its byte-order mark, else UTF-8 (with or without BOM), else Windows-1252.

    A UTF-8 file with a few stray bytes stays UTF-8: each bad byte becomes U+FFFD and a warning names
    the lines. Only a file with no UTF-8 character at all is read as Windows-1252 (Excel's ANSI CSV).
    """
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as error:
            raise ValueError(f"{name}: broken UTF-16 text ({error}); export the file again.") from None
    text = raw.decode("utf-8-sig", errors="surrogateescape")
    bad = [m.start() for m in _UNDECODABLE.finditer(text)]
    if not bad:
        return text
    if not any(ord(ch) > 127 for ch in _UNDECODABLE.sub("", text)):
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError:
            raise ValueError(f"{name}: unknown text encoding (neither UTF-8 nor Windows-1252); "
                             "save it as UTF-8 and try again.") from None
    lines = sorted({text.count("\n", 0, i) + 1 for i in bad})
    shown = ", ".join(map(str, lines[:10])) + (" ..." if len(lines) > 10 else "")
    warnings.warn(f"{name}: {len(bad)} byte(s) are not valid UTF-8, on line(s) {shown}; each was replaced by "
                  "'\ufffd' and the rest read as UTF-8. Fix them in the file to keep those characters.", stacklevel=2)
    return _UNDECODABLE.sub("\ufffd", text)


def detect_format(text: str) -> str:
    """The export format of ``text``, judged from its content: a key of ``FORMAT_NAMES``."""
    head = text.lstrip("\ufeff \t\r\n")[:5000]
    first_line = head.split("\n", 1)[0]
    if head.startswith(("{", "[")):
        lines = [line for line in head.splitlines()[:2] if line.strip()]
        return "openalex-jsonl" if len(lines) == 2 and all(line.lstrip().startswith("{") for line in lines) \
            and lines[0].rstrip().endswith("}") else "openalex"
    if first_line.count(",") >= 2 and re.search(r"\btitle\b", first_line, flags=re.IGNORECASE):
        return "csv"  # a CSV header; an abstract inside may hold anything, even a line like "@NASA ("
    if re.match(r"(FN|VR|PT) ", head):
        return "wos"
    if "\t" in first_line and {"PT", "TI", "PY"} <= {c.strip() for c in first_line.split("\t")}:
        return "wos-tab"
    if re.search(r"^TY  - ", head, flags=re.MULTILINE):
        return "ris"
    if re.search(r"^\s*@[A-Za-z]+\s*[{(]", head, flags=re.MULTILINE):
        return "bibtex"
    return "csv"


def read_export(text: str, name: str, kind: str | None = None) -> pd.DataFrame:
    """Records of an export (format ``kind``, detected when None) in the course's columns, one row each.

    Raises ValueError naming the format seen and what is missing, for a file that holds no usable record.
    """
    kind = kind or detect_format(text)
    readers = {"openalex": openalex_records, "openalex-jsonl": openalex_records, "wos": wos_records,
               "wos-tab": wos_records, "ris": ris_records, "bibtex": bibtex_records}
    if kind not in readers:
        raise ValueError(f"{name}: no reader for the format {kind!r}; known: {', '.join(readers)}.")
    rows = readers[kind](text, name, kind)
    what = FORMAT_NAMES[kind]
    if not rows:
        raise ValueError(f"{name}: read as {what}, but it holds no record.")
    frame = pd.DataFrame(rows)
    if frame["title"].isna().all():
        raise ValueError(f"{name}: read as {what}, but no record has a title; check that the export includes "
                         "titles (and abstracts).")
    return frame


def _joined(values) -> str | None:
    values = [str(v).strip() for v in values or [] if v and str(v).strip()]
    return "; ".join(dict.fromkeys(values)) or None


def _split(value, separators: str = ";") -> list[str]:
    if not isinstance(value, str):
        return list(value or [])
    return [part.strip() for part in re.split(f"[{separators}]", value) if part.strip()]


def _cited_by(*notes) -> int | None:
    match = _CITED_BY.search(" ".join(n for n in notes if isinstance(n, str)))
    return int(match.group(1)) if match else None


def _year(value) -> str | None:
    match = re.search(r"\d{4}", str(value)) if value is not None else None
    return match.group(0) if match else None


# --------------------------------------------------------------------------- OpenAlex


def _json_works(text: str, name: str, kind: str) -> list:
    """Works of a JSON page (``{"meta", "results"}``), a JSON list or JSON Lines."""
    if kind == "openalex-jsonl":
        works = []
        lines = text.lstrip("\ufeff").splitlines()
        for number, line in enumerate(lines, start=1):
            if line.strip():
                try:
                    works.append(json.loads(line))
                except json.JSONDecodeError as error:
                    cut = " (the last line: the file looks truncated)" if number == len(lines) else ""
                    raise ValueError(f"{name}: read as JSON Lines, but line {number} is not JSON{cut}: {error.msg}.") from None
        return works
    try:
        data = json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError as error:
        cut = " It ends inside a value: the file looks truncated." if _ends_open(text) else ""
        raise ValueError(f"{name}: read as JSON, but it is not valid JSON (line {error.lineno}: {error.msg}).{cut}") from None
    if isinstance(data, dict) and "results" in data:
        return data["results"]
    if isinstance(data, dict):
        return [data]
    return data


def _ends_open(text: str) -> bool:
    """Whether JSON text stops inside a string, object or list (a cut-off file, not a malformed one)."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if escaped:
            escaped = False
        elif in_string and char == "\\":
            escaped = True
        elif in_string:
            in_string = char != '"'
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
    return in_string or depth > 0


def openalex_records(text: str, name: str = "the file", kind: str = "openalex") -> list[dict]:
    """Course-schema rows of OpenAlex works (JSON page, list or JSON Lines, as the API or pyalex save them)."""
    works = _json_works(text, name, kind)
    if not isinstance(works, list) or not all(isinstance(w, dict) for w in works):
        raise ValueError(f"{name}: read as JSON, but not a list of OpenAlex works (expected objects with "
                         "'title', 'publication_year', ...).")
    if works and not any("title" in w or "display_name" in w for w in works):
        keys = sorted({k for w in works[:20] for k in w})[:12]
        raise ValueError(f"{name}: read as JSON, but these are not OpenAlex works: no record has 'title' or "
                         f"'display_name' (keys seen: {', '.join(keys)}).")
    invert_abstract = parser("pyalex", "pyalex").invert_abstract
    return [_openalex_row(work, invert_abstract) for work in works]


# OpenAlex's work types, in the words Scopus uses for the course corpus ("Article", "Conference paper", ...).
_OPENALEX_TYPES = {"article": "Article", "review": "Review", "book-chapter": "Book chapter", "book": "Book",
                   "proceedings-article": "Conference paper", "editorial": "Editorial", "letter": "Letter",
                   "erratum": "Erratum", "preprint": "Preprint", "dataset": "Data paper"}
_OA_STATUS = {"gold": "Gold", "hybrid": "Hybrid Gold", "bronze": "Bronze", "green": "Green", "diamond": "Diamond"}


def _openalex_row(work: dict, invert_abstract) -> dict:
    authorships = work.get("authorships") or []
    source = (work.get("primary_location") or {}).get("source") or {}
    access = work.get("open_access")
    open_access = None
    if isinstance(access, dict) and access.get("is_oa"):
        status = _OA_STATUS.get(access.get("oa_status"), str(access.get("oa_status") or "").capitalize())
        open_access = "All Open Access" + (f"; {status} Open Access" if status else "")
    return {
        "authors": _joined((a.get("author") or {}).get("display_name") for a in authorships),
        "title": work.get("title") or work.get("display_name"),
        "abstract": invert_abstract(work.get("abstract_inverted_index")),
        "keywords": [k.get("display_name") for k in work.get("keywords") or [] if k.get("display_name")],
        "outlet": source.get("display_name"),
        "outlet_type": _OPENALEX_TYPES.get(work.get("type"), work.get("type")),
        "year": work.get("publication_year"),
        "citations": work.get("cited_by_count"),
        "open_access": open_access,
        "language": work.get("language"),  # an ISO 639-1 code, e.g. "en"
        "doi": clean_doi(work.get("doi")),
        "affiliations": _joined(i.get("display_name") for a in authorships for i in a.get("institutions") or []),
        "topics": _joined(t.get("display_name") for t in work.get("topics") or []),
        "openalex_id": work.get("id"),
    }


# --------------------------------------------------------------------------- Web of Science

# Web of Science field tags -> course columns (Clarivate's "Web of Science Core Collection Field Tags").
WOS_TAGS = {"AU": "authors", "TI": "title", "AB": "abstract", "DE": "keywords", "SO": "outlet", "DT": "outlet_type",
            "PY": "year", "TC": "citations", "OA": "open_access", "LA": "language", "DI": "doi",
            "C1": "affiliations", "UT": "wos_id"}


def wos_records(text: str, name: str = "the file", kind: str = "wos") -> list[dict]:
    """Course-schema rows of a Web of Science export: plain text (``FN``/``PT``/.../``ER``) or tab-delimited."""
    wosfile = parser("wosfile", "wosfile")
    handle = io.StringIO(text.lstrip("\ufeff"))
    try:
        if kind == "wos-tab":
            # WoS quotes nothing: a '"' in a title is a character, not a quote
            records = list(wosfile.TabDelimitedReader(handle, quoting=csv.QUOTE_NONE))
        else:
            records = list(wosfile.PlainTextReader(handle))
    except wosfile.ReadError as error:
        hint = " The file looks truncated: export it again." if "EOF" in str(error) else ""
        raise ValueError(f"{name}: read as {FORMAT_NAMES[kind]}, but wosfile could not parse it ({error}).{hint}") from None
    rows = []
    for record in records:
        row = {column: (record.get(tag) or "").strip() or None for tag, column in WOS_TAGS.items()}
        row["keywords"] = _split(row["keywords"])
        row["doi"] = clean_doi(row["doi"])
        rows.append(row)
    if records and not any("TI" in r for r in records):
        raise ValueError(f"{name}: read as {FORMAT_NAMES[kind]}, but it has no TI (title) field.")
    return rows


# --------------------------------------------------------------------------- RIS

# RIS reference types -> Scopus's words, for files without M3 (Zotero, Mendeley).
_RIS_TYPES = {"JOUR": "Article", "CONF": "Conference paper", "CPAPER": "Conference paper", "CHAP": "Book chapter",
              "BOOK": "Book", "THES": "Thesis", "RPRT": "Report", "DATA": "Data paper"}


def ris_records(text: str, name: str = "the file", kind: str = "ris") -> list[dict]:
    """Course-schema rows of a RIS file (Scopus, Web of Science, Zotero, Mendeley), parsed by rispy."""
    rispy = parser("rispy", "rispy")
    text = text.lstrip("\ufeff")
    starts = len(re.findall(r"^TY  - ", text, flags=re.MULTILINE))
    try:
        entries = rispy.loads(text)
    except (ValueError, KeyError, IndexError) as error:
        raise ValueError(f"{name}: read as RIS, but rispy could not parse it ({error}).") from None
    if len(entries) < starts:
        raise ValueError(f"{name}: read as RIS, but {starts - len(entries)} of its {starts} records do not end with "
                         "'ER  - ': the file looks truncated; export it again.")
    rows = []
    for entry in entries:
        notes = entry.get("notes") or []
        rows.append({
            "authors": _joined(entry.get("authors") or entry.get("first_authors")),
            "title": entry.get("title") or entry.get("primary_title"),
            "abstract": entry.get("abstract") or entry.get("notes_abstract"),
            "keywords": [k for kw in entry.get("keywords") or [] for k in _split(kw)],
            "outlet": next((entry[k] for k in ("secondary_title", "journal_name", "alternate_title3",
                                               "alternate_title2", "alternate_title1") if entry.get(k)), None),
            "outlet_type": entry.get("type_of_work") or _RIS_TYPES.get(entry.get("type_of_reference")),
            "year": _year(entry.get("year") or entry.get("publication_year") or entry.get("date")),
            "citations": _cited_by(*notes),
            "open_access": None,
            "language": entry.get("language"),
            "doi": clean_doi(entry.get("doi")),
            "affiliations": _joined(entry.get("author_address") if isinstance(entry.get("author_address"), list)
                                    else _split(entry.get("author_address"))),
        })
    return rows


# --------------------------------------------------------------------------- BibTeX

_BIBTEX_TYPES = {"article": "Article", "inproceedings": "Conference paper", "conference": "Conference paper",
                 "incollection": "Book chapter", "inbook": "Book chapter", "book": "Book",
                 "phdthesis": "Thesis", "mastersthesis": "Thesis", "techreport": "Report"}


def bibtex_records(text: str, name: str = "the file", kind: str = "bibtex") -> list[dict]:
    """Course-schema rows of a BibTeX file (Scopus, Zotero, Google Scholar), parsed by bibtexparser 2."""
    bibtexparser = parser("bibtexparser", "bibtexparser>=2")
    if not hasattr(bibtexparser, "parse_string"):
        raise ImportError("reading BibTeX needs bibtexparser 2: `pip install 'bibtexparser>=2'`")
    middlewares = bibtexparser.middlewares
    logging.getLogger("bibtexparser").setLevel(logging.ERROR)  # failed blocks are reported below, once
    library = bibtexparser.parse_string(text.lstrip("\ufeff"), append_middleware=[
        middlewares.LatexDecodingMiddleware(), middlewares.SeparateCoAuthors()])
    failed = library.failed_blocks
    if failed:
        lines = ", ".join(str(b.start_line + 1) for b in failed[:10])
        message = f"{name}: {len(failed)} BibTeX entr{'y' if len(failed) == 1 else 'ies'} could not be parsed (starting on line(s) {lines})"
        if not library.entries:
            raise ValueError(f"{message} and none could: read as BibTeX, but nothing usable.")
        last = failed[-1].start_line >= max(e.start_line for e in library.entries)
        warnings.warn(message + (": the file looks truncated." if last else "; they are left out."), stacklevel=2)
    rows = []
    for entry in library.entries:
        field = {key.lower(): f.value for key, f in entry.fields_dict.items()}
        note = field.get("note") if isinstance(field.get("note"), str) else ""
        access = re.search(r"All Open Access[^;]*", note)
        keywords = field.get("author_keywords") or field.get("keywords") or ""
        rows.append({
            "authors": _joined(field.get("author") if isinstance(field.get("author"), list) else [field.get("author")]),
            "title": field.get("title"),
            "abstract": field.get("abstract"),
            "keywords": _split(keywords, ";" if ";" in keywords else ","),
            "outlet": field.get("journal") or field.get("booktitle") or field.get("journaltitle"),
            "outlet_type": field.get("type") or _BIBTEX_TYPES.get(entry.entry_type.lower()),
            "year": _year(field.get("year") or field.get("date")),
            "citations": _cited_by(note),
            "open_access": access.group(0).replace(", ", "; ") if access else None,
            "language": field.get("language") or field.get("langid"),
            "doi": clean_doi(field.get("doi")),
            "affiliations": field.get("affiliations"),
        })
    return rows
