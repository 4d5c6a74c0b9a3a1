"""Course-schema records written out as other tools write them, for tests and measurements.

``works_from_records``: OpenAlex works in the API's documented shape (``/works`` results: ``id``, ``doi`` as a
``https://doi.org/`` URL, ``abstract_inverted_index``, ``authorships``, ``primary_location.source``, ...).
These are course records in OpenAlex's format, not OpenAlex's data: ids and authorship details are made up.
``ris_from_records``: the same records as RIS, one tag per line as Scopus writes it.
"""
import pandas as pd


def _inverted_index(text: str) -> dict | None:
    index = {}
    for position, word in enumerate(text.split()):
        index.setdefault(word, []).append(position)
    return index or None


def works_from_records(frame: pd.DataFrame, start: int = 1) -> list[dict]:
    """One OpenAlex work per course record (abstract, authors, outlet, year, citations, DOI, keywords)."""
    works = []
    for number, row in enumerate(frame.itertuples(index=False), start=start):
        authors = [a.strip() for a in str(row.authors).split(";") if a.strip()] if isinstance(row.authors, str) else []
        works.append({
            "id": f"https://openalex.org/W{number}",
            "doi": f"https://doi.org/{row.doi}" if isinstance(row.doi, str) else None,
            "title": row.title, "display_name": row.title,
            "publication_year": None if pd.isna(row.year) else int(row.year),
            "language": "en", "type": "article",
            "primary_location": {"source": {"display_name": row.outlet if isinstance(row.outlet, str) else None,
                                            "type": "journal"}},
            "open_access": {"is_oa": False, "oa_status": "closed"},
            "authorships": [{"author_position": "middle", "author": {"display_name": a}, "institutions": []} for a in authors],
            "cited_by_count": int(row.citations),
            "abstract_inverted_index": _inverted_index(row.abstract) if row.has_abstract else None,
            "keywords": [{"display_name": k, "score": 0.5} for k in row.keywords],
            "topics": [],
        })
    return works


def ris_from_records(frame: pd.DataFrame) -> str:
    """The records as RIS (``TY  - JOUR`` ... ``ER  - ``), CRLF-free."""
    lines = []
    for row in frame.itertuples(index=False):
        lines.append("TY  - JOUR")
        lines += [f"AU  - {a.strip()}" for a in str(row.authors).split(";") if isinstance(row.authors, str) and a.strip()]
        lines.append(f"TI  - {row.title}")
        if not pd.isna(row.year):
            lines.append(f"PY  - {int(row.year)}")
        if isinstance(row.outlet, str):
            lines.append(f"T2  - {row.outlet}")
        if isinstance(row.doi, str):
            lines.append(f"DO  - {row.doi}")
        if row.has_abstract:
            lines.append(f"AB  - {' '.join(row.abstract.split())}")
        lines += [f"KW  - {k}" for k in row.keywords]
        lines += [f"N1  - Cited By: {int(row.citations)}", "ER  - ", ""]
    return "\n".join(lines)
