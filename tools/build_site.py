"""Build the executed course as a static site: an index page and one page per notebook and per solution.

    python -m tools.build_site [EXECUTED_DIR] [--out DIR]

EXECUTED_DIR (default ``outputs/``) holds the executed copies that ``python -m tools.run_notebooks`` writes;
``make site`` runs the notebooks, then the solutions, then this, into ``outputs/site/``. Pages are
nbconvert's HTML (its ``lab`` template) with nothing fetched from the internet, so the site works offline
and from any static host (GitHub Pages): plotly.js is copied from the installed plotly package into
``static/`` and the interactive figures call it; the template's loaders of require.js, MathJax and mermaid
(CDN addresses) are left out, since the course has no math or diagrams; a progress-bar widget shows its
text. Links to the course's notebooks and solutions (Colab, GitHub or relative) point at their pages here.
"""
from __future__ import annotations

import argparse
import datetime
import html
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from helpers import REPO_URL
from helpers.cache import REPO_ROOT, outputs_dir

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
PLOTLY_JS = "static/plotly.min.js"
MARKER = ".llm4scisci-site.json"  # names the files a build wrote: a later build replaces only those
_PLOTLY_CDN = re.compile(r"https://cdn\.plot\.ly/plotly-[\w.-]*?\.js")
_LINK_TARGET = re.compile(r"""(\]\(|href=["'])([^)"'\s]+)""")

# nbconvert's lab template, less everything it would load from a CDN, plus a line of navigation
# (and an empty icon, so a browser does not ask the server for /favicon.ico).
_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{% block html_head_js_requirejs %}{% endblock %}
{% block jupyter_widgets %}{% endblock %}
{% block html_head_js_mathjax %}{% endblock %}
{% block html_head_js_mermaidjs %}{% endblock %}
{% block extra_css %}<link rel="icon" href="data:,">
{% if resources.site_plotly %}<script src="{{ resources.site_plotly }}" charset="utf-8"></script>
{% endif %}<style>nav.site { font: 14px sans-serif; padding: 8px 16px; border-bottom: 1px solid #ddd; }
nav.site a { margin-right: 1.2em; }</style>{% endblock %}
{% block body_header %}{{ super() }}<nav class="site">{{ resources.site_nav }}</nav>{% endblock %}
"""


@dataclass(frozen=True)
class Page:
    """One notebook of the site: ``source`` (its path in the repository), ``page`` (its file in the site)."""

    source: str
    page: str

    @property
    def name(self) -> str:
        """The notebook's file name, as the executed copy is named."""
        return Path(self.source).name


def course_pages(root: Path = REPO_ROOT) -> list[Page]:
    """The course notebooks (``[0-9]_*.ipynb``) in teaching order, then ``solutions/*.ipynb``."""
    sources = sorted(root.glob("[0-9]_*.ipynb")) + sorted((root / "solutions").glob("*.ipynb"))
    return [Page(p.relative_to(root).as_posix(), p.stem + ".html") for p in sources]


def repo_slug(repo_url: str = REPO_URL) -> str:
    """``OWNER/NAME`` of a GitHub address."""
    return repo_url.rstrip("/").removeprefix("https://github.com/")


def pages_url(repo_url: str = REPO_URL) -> str:
    """Where GitHub Pages serves the repository's site: ``https://owner.github.io/NAME/``."""
    owner, name = repo_slug(repo_url).split("/")
    return f"https://{owner.lower()}.github.io/{name}/"


def colab_url(source: str, repo_url: str = REPO_URL) -> str:
    """The Colab address that opens ``source`` (a path in the repository) from GitHub's main branch."""
    return f"https://colab.research.google.com/github/{repo_slug(repo_url)}/blob/main/{source}"


def local_link(target: str, pages: list[Page], repo_url: str = REPO_URL) -> str:
    """``target`` pointed at its page in the site when it names one of ``pages``; otherwise unchanged.

    Recognised: the Colab and GitHub addresses of this repository's notebooks and relative paths
    (``solutions/x.ipynb``, ``../1_pipelines.ipynb``), each with an optional ``#anchor``.
    """
    slug = re.escape(repo_slug(repo_url))
    path, anchor = (target.split("#", 1) + [""])[:2]
    remote = re.match(rf"https://(?:colab\.research\.google\.com/github|github\.com)/{slug}/blob/[^/]+/(.+)$",
                      path, flags=re.IGNORECASE)
    if remote:
        path = remote.group(1)
    elif re.match(r"[a-z][a-z0-9+.-]*:", path, flags=re.IGNORECASE):
        return target  # another site, mailto:, data: ...
    by_name = {p.name: p.page for p in pages}
    page = by_name.get(Path(path).name) if path.endswith(".ipynb") else None
    return page + (f"#{anchor}" if anchor else "") if page else target


def _rewrite_links(text: str, pages: list[Page]) -> str:
    return _LINK_TARGET.sub(lambda m: m.group(1) + local_link(m.group(2), pages), text)


def _plotly_html(figure: dict, div_id: str) -> str:
    """The HTML of one plotly figure that draws with the site's own plotly.js (loaded in the page's head)."""
    import plotly.io

    return plotly.io.to_html(figure, include_plotlyjs=False, full_html=False, div_id=div_id, validate=False,
                             config=figure.get("config"))


def prepare(notebook: nbformat.NotebookNode, pages: list[Page]) -> tuple[nbformat.NotebookNode, bool]:
    """A copy of an executed notebook ready for the site, and whether it draws plotly figures.

    Links to the course's notebooks go to their pages; plotly's JSON outputs become HTML that calls the
    site's plotly.js (a CDN address in an HTML output is pointed at it); widget outputs keep their text.
    """
    notebook = nbformat.from_dict(json.loads(json.dumps(notebook)))
    notebook.metadata.pop("widgets", None)
    uses_plotly = False
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown":
            cell.source = _rewrite_links(cell.source, pages)
        for k, output in enumerate(cell.get("outputs", [])):
            data = output.get("data", {})
            data.pop(WIDGET_MIME, None)
            if PLOTLY_MIME in data:
                data["text/html"] = _plotly_html(data.pop(PLOTLY_MIME), f"plot-{i}-{k}")
                uses_plotly = True
            for mime in ("text/html", "text/markdown"):
                if mime in data:
                    text = "".join(data[mime]) if isinstance(data[mime], list) else data[mime]
                    uses_plotly |= bool(_PLOTLY_CDN.search(text)) or "Plotly.newPlot" in text
                    data[mime] = _rewrite_links(_PLOTLY_CDN.sub(PLOTLY_JS, text), pages)
    return notebook, uses_plotly


def notebook_title(notebook: nbformat.NotebookNode, fallback: str) -> str:
    """The first Markdown heading of the notebook, without its ``#``s."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            heading = re.search(r"^#+\s+(.+)$", cell.source, flags=re.MULTILINE)
            if heading:
                return re.sub(r"[*_`]", "", heading.group(1)).strip()
    return fallback


def executed_on(notebook: nbformat.NotebookNode) -> str | None:
    """The date (YYYY-MM-DD) the first code cell ran, from the timing nbclient records, or None."""
    for cell in notebook.cells:
        stamp = cell.get("metadata", {}).get("execution", {}).get("iopub.execute_input")
        if stamp:
            return stamp[:10]
    return None


def render_page(notebook: nbformat.NotebookNode, title: str, nav: str, plotly: bool) -> str:
    """One notebook as a whole HTML page (nbconvert's lab template, nothing from a CDN)."""
    import jinja2
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", template_file="site.html.j2",
                            extra_loaders=[jinja2.DictLoader({"site.html.j2": _TEMPLATE})])
    notebook.metadata["title"] = title
    body, _ = exporter.from_notebook_node(
        notebook, resources={"site_nav": nav, "site_plotly": PLOTLY_JS if plotly else ""})
    return body


def _nav(page: Page, pages: list[Page]) -> str:
    links = ['<a href="index.html">Course index</a>']
    for other in pages:  # a notebook's solutions, a solution's notebook
        solves = other.source.startswith("solutions/") and other.name.startswith(Path(page.source).stem)
        solved = page.source.startswith("solutions/") and page.name.startswith(Path(other.source).stem)
        if other != page and (solves or solved):
            links.append(f'<a href="{other.page}">{"Worked solutions" if solves else "The notebook"}</a>')
    links.append(f'<a href="{html.escape(colab_url(page.source))}">Open in Colab</a>')
    links.append(f'<a href="{html.escape(REPO_URL)}">Repository</a>')
    return " ".join(links)


def index_page(entries: list[tuple[Page, str, str | None]]) -> str:
    """The site's front page: each notebook with its solutions, title, run date and Colab link."""
    items = []
    for page, title, date in entries:
        kind = "solutions" if page.source.startswith("solutions/") else "notebook"
        ran = f", executed {date}" if date else ""
        items.append(f'<li class="{kind}"><a href="{page.page}">{html.escape(title)}</a> '
                     f'<span class="meta">({html.escape(page.source)}{ran}; '
                     f'<a href="{html.escape(colab_url(page.source))}">open in Colab</a>)</span></li>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>LLM4SciSci: the executed course</title>
<style>body {{ font: 16px/1.5 sans-serif; max-width: 48em; margin: 2em auto; padding: 0 1em; }}
li {{ margin: .4em 0; }} li.solutions {{ margin-left: 2em; }} .meta {{ color: #666; font-size: 90%; }}</style>
</head><body>
<h1>LLM4SciSci: open-source LLMs for science-of-science research</h1>
<p>The course's notebooks and their worked solutions, executed top to bottom, with every output shown.
To run them yourself, open one in Colab or clone <a href="{html.escape(REPO_URL)}">the repository</a>.</p>
<ul>
{chr(10).join(items)}
</ul>
<p class="meta">Built {datetime.date.today().isoformat()} by <code>make site</code> (tools/build_site.py).</p>
</body></html>
"""


def _check_out_folder(out: Path) -> list[str]:
    """The files an earlier build wrote into ``out``; an error when ``out`` holds files no build made."""
    marker = out / MARKER
    if marker.is_file():
        return json.loads(marker.read_text())["files"]
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty and was not made by tools.build_site (no {MARKER} in it): "
                              "choose another folder with --out, or empty it yourself.")
    return []


def build_site(executed_dir: str | Path | None = None, out: str | Path | None = None,
               pages: list[Page] | None = None, require_all: bool = True) -> list[Path]:
    """Write the site into ``out`` (default ``<outputs>/site``) from the executed copies in ``executed_dir``.

    ``pages``: the notebooks to publish (default: ``course_pages()``). With ``require_all``, a missing
    executed copy is an error naming it; without, the site has the pages that could be made.
    Returns the files written (index.html first).
    """
    import plotly.offline

    executed_dir = Path(executed_dir) if executed_dir else outputs_dir()
    out = Path(out) if out else outputs_dir() / "site"
    pages = course_pages() if pages is None else pages
    if len({p.name for p in pages}) < len(pages):
        raise ValueError(f"two notebooks share a file name, so their pages would too: {[p.source for p in pages]}")
    missing = [p.name for p in pages if not (executed_dir / p.name).is_file()]
    if missing and require_all:
        raise FileNotFoundError(f"No executed copy of {', '.join(missing)} in {executed_dir}: run `make site`, or "
                                f"`python -m tools.run_notebooks {' '.join(p.source for p in pages if p.name in missing)}`"
                                " first (it writes the executed copies there).")
    pages = [p for p in pages if p.name not in missing]
    if not pages:
        raise FileNotFoundError(f"No executed notebook in {executed_dir}: run `python -m tools.run_notebooks` first.")
    earlier = _check_out_folder(out)
    (out / "static").mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(json.dumps({"files": earlier}))  # the folder is the build's from here on
    written, entries = [], []
    for page in pages:
        notebook, draws_plotly = prepare(nbformat.read(executed_dir / page.name, as_version=4), pages)
        title = notebook_title(notebook, page.name)
        entries.append((page, title, executed_on(notebook)))
        (out / page.page).write_text(render_page(notebook, title, _nav(page, pages), draws_plotly), encoding="utf-8")
        written.append(out / page.page)
    (out / PLOTLY_JS).write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
    entries.sort(key=lambda entry: entry[0].page)  # each notebook, then its solutions (1_x.html, 1_x_solutions.html)
    (out / "index.html").write_text(index_page(entries), encoding="utf-8")
    written = [out / "index.html", *written, out / PLOTLY_JS]
    names = [p.relative_to(out).as_posix() for p in written]
    for stale in set(earlier) - set(names):
        (out / stale).unlink(missing_ok=True)
    (out / MARKER).write_text(json.dumps({"files": names}, indent=1))
    return written


def main(argv=None) -> int:
    """Build the site (the command line; see the module's docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("executed_dir", nargs="?", help="folder of executed notebooks (default: outputs/)")
    parser.add_argument("--out", help="folder for the site (default: outputs/site)")
    args = parser.parse_args(argv)
    try:
        written = build_site(args.executed_dir, args.out)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        print(error, file=sys.stderr)
        return 1
    print(f"Site: {len(written) - 2} pages and index.html in {written[0].parent} "
          f"(open {written[0]}; published: {pages_url()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
