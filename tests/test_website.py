"""The executed course as a static site (tools/build_site.py), built and opened in a real headless Chromium.

The browser is Debian's ``chromium`` (``.ci/run`` installs it), driven by Playwright; where it is not
installed the browser tests skip and say so. The course pages are built from the executed copies that
the notebook (and solution) tests of the same pytest run left in its temporary folder, so CI executes no
notebook twice; run alone, this module executes notebook 2 (the one with the interactive map) itself.
The file sorts after the notebook and solution tests on purpose (pytest runs modules in name order).
"""
import base64
import contextlib
import functools
import http.server
import io
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

from helpers import REPO_URL
from helpers.cache import REPO_ROOT
from tools.build_site import MARKER, PLOTLY_JS, Page, build_site, course_pages, local_link, pages_url

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package: Playwright's own browser download cannot run here
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
SLUG = REPO_URL.removeprefix("https://github.com/")
TITLES = ["Citation dynamics of early-career scientists", "Team size and novelty", "Peer review & its discontents"]


# --- a small executed notebook and its solutions, made here (no kernel) ------------------------------

def _png() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _map_json() -> dict:
    import plotly.graph_objects as go

    fig = go.Figure(go.Scattergl(x=[0, 1, 10], y=[0, 1, 5], mode="markers", marker=dict(size=12),
                                 text=[f"title: {t}<br>year: 2020" for t in TITLES],
                                 hovertemplate="%{text}<extra>cluster 0</extra>"))
    fig.update_layout(width=600, height=400)
    return json.loads(fig.to_json())


def _executed(cells) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(cells=cells)
    for i, cell in enumerate(notebook.cells):
        cell.id = f"cell-{i}"
        if cell.cell_type == "code":
            cell.execution_count = i
    return notebook


@pytest.fixture
def small_course(tmp_path):
    """Executed copies of ``1_demo.ipynb`` and ``solutions/1_demo_solutions.ipynb`` and their Pages."""
    out = nbformat.v4.new_output
    notebook = _executed([
        nbformat.v4.new_markdown_cell(
            "# 1 · A demo\n\nSee [the worked answer](https://colab.research.google.com/github/"
            f"{SLUG}/blob/main/solutions/1_demo_solutions.ipynb#task-1), "
            '<a href="solutions/1_demo_solutions.ipynb">again</a>, '
            "[another course](https://colab.research.google.com/github/other/course/blob/main/1_demo.ipynb)."),
        nbformat.v4.new_code_cell("plot()", outputs=[
            out("display_data", data={"image/png": _png(), "text/plain": "<Figure>"}),
            out("display_data", data={"application/vnd.plotly.v1+json": _map_json()}),
            out("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "x"},
                                      "text/plain": "Batches: 100% 3/3"}),
        ]),
    ])
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    solutions = _executed([nbformat.v4.new_markdown_cell(
        "# Solutions to notebook 1\n\nBack to [the notebook](../1_demo.ipynb).")])
    executed = tmp_path / "executed"
    executed.mkdir()
    nbformat.write(notebook, executed / "1_demo.ipynb")
    nbformat.write(solutions, executed / "1_demo_solutions.ipynb")
    return executed, [Page("1_demo.ipynb", "1_demo.html"), Page("solutions/1_demo_solutions.ipynb", "1_demo_solutions.html")]


# --- building -------------------------------------------------------------------------------------

def test_links_to_the_course_notebooks_point_at_their_pages():
    pages = course_pages() + [Page("solutions/2_clustering_solutions.ipynb", "2_clustering_solutions.html")]
    link = functools.partial(local_link, pages=pages)
    colab = f"https://colab.research.google.com/github/{SLUG}/blob/main/"
    assert link(colab + "solutions/2_clustering_solutions.ipynb") == "2_clustering_solutions.html"
    assert link(colab + "2_clustering.ipynb#5-look-at-the-map") == "2_clustering.html#5-look-at-the-map"
    assert link(f"https://github.com/{SLUG}/blob/main/1_pipelines.ipynb") == "1_pipelines.html"
    assert link("solutions/2_clustering_solutions.ipynb") == "2_clustering_solutions.html"
    assert link("../3_labeling_retrieval.ipynb") == "3_labeling_retrieval.html"
    for unchanged in ["https://colab.research.google.com/github/other/course/blob/main/1_pipelines.ipynb",
                      colab + "9_not_in_the_site.ipynb", "https://www.sbert.net", "#a-heading", "README.md"]:
        assert link(unchanged) == unchanged


def test_site_has_every_page_plotly_js_and_nothing_from_a_cdn(small_course, tmp_path):
    import plotly.offline

    executed, pages = small_course
    written = build_site(executed, tmp_path / "site", pages=pages)
    site = tmp_path / "site"
    assert [p.relative_to(site).as_posix() for p in written] == [
        "index.html", "1_demo.html", "1_demo_solutions.html", PLOTLY_JS]
    assert (site / PLOTLY_JS).read_text(encoding="utf-8") == plotly.offline.get_plotlyjs()  # the installed one
    index = (site / "index.html").read_text()
    assert 'href="1_demo.html">1 · A demo</a>' in index and 'href="1_demo_solutions.html"' in index
    page = (site / "1_demo.html").read_text()
    assert re.findall(r'<script[^>]*\ssrc="([^"]*)"', page) == [PLOTLY_JS]  # the only script loaded from a file
    assert not re.search(r'(src|href)="https?://[^"]*\.(js|css)', page)
    assert "Plotly.newPlot" in page and "Batches: 100% 3/3" in page and "data:image/png;base64," in page
    assert 'href="1_demo_solutions.html#task-1"' in page and 'href="1_demo_solutions.html">again' in page
    assert "github/other/course/blob/main/1_demo.ipynb" in page  # another repository's notebook stays remote
    solutions = (site / "1_demo_solutions.html").read_text()
    assert 'href="../1_demo.ipynb"' not in solutions and 'href="1_demo.html"' in solutions
    assert PLOTLY_JS not in solutions  # plotly.js only where a figure needs it


def test_missing_executed_copy_is_named_with_the_command_that_makes_it(small_course, tmp_path):
    executed, pages = small_course
    (executed / "1_demo_solutions.ipynb").unlink()
    with pytest.raises(FileNotFoundError, match=r"No executed copy of 1_demo_solutions\.ipynb .*"
                                                r"tools\.run_notebooks solutions/1_demo_solutions\.ipynb"):
        build_site(executed, tmp_path / "site", pages=pages)
    assert not (tmp_path / "site").exists()
    assert [p.name for p in build_site(executed, tmp_path / "site", pages=pages, require_all=False)] == [
        "index.html", "1_demo.html", "plotly.min.js"]


def test_site_folder_is_never_one_the_build_did_not_make(small_course, tmp_path):
    executed, pages = small_course
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.html").write_text("mine")
    with pytest.raises(FileExistsError, match="not made by tools.build_site"):
        build_site(executed, theirs, pages=pages)
    assert [p.name for p in theirs.iterdir()] == ["notes.html"]
    site = tmp_path / "site"
    build_site(executed, site, pages=pages)
    (site / "mine.txt").write_text("kept")
    build_site(executed, site, pages=pages[:1])  # a rebuild without the solutions removes only its own old page
    assert not (site / "1_demo_solutions.html").exists() and (site / "mine.txt").read_text() == "kept"
    assert json.loads((site / MARKER).read_text())["files"] == ["index.html", "1_demo.html", PLOTLY_JS]


def test_readme_links_the_site_and_set_repo_url_moves_it(tmp_path):
    assert pages_url("https://github.com/Some-Org/Course") == "https://some-org.github.io/Course/"
    readme = (REPO_ROOT / "README.md").read_text()
    assert pages_url() in readme and "make site" in readme and "INSTRUCTORS.md" in readme
    for name in ["Makefile", "README.md", "INSTRUCTORS.md", "helpers/__init__.py",
                 *[p.name for p in REPO_ROOT.glob("[0-9]_*.ipynb")]]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    run = subprocess.run(["make", "set-repo-url", "URL=https://github.com/Some-Org/Course", f"PYTHON={sys.executable}"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    for name in ["README.md", "INSTRUCTORS.md"]:
        text = (tmp_path / name).read_text()
        assert pages_url() not in text and SLUG not in text, name
    assert "https://some-org.github.io/Course/" in (tmp_path / "README.md").read_text()


# --- the browser ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install chromium) "
                    "to run the browser tests (.ci/run does)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                                         "(requirements-dev.txt)")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, timeout=60_000)
        yield chromium
        chromium.close()


@contextlib.contextmanager
def serve(folder: Path):
    """The folder over HTTP on a free loopback port, as GitHub Pages would serve it: yields the base address."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def open_page(browser, url: str):
    """The page at ``url`` once loaded, and its problems: console errors, script errors, outside requests."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"script error: {e}"))

    def only_loopback(route):
        if route.request.url.startswith(("http://127.0.0.1:", "data:")):
            route.continue_()
        else:  # the site must work offline: anything from elsewhere is a failure, and is not fetched
            problems.append(f"outside request: {route.request.url}")
            route.abort()

    page.route("**/*", only_loopback)
    page.goto(url, wait_until="load", timeout=30_000)
    page.wait_for_load_state("networkidle", timeout=30_000)
    return page, problems


def unloaded_images(page) -> tuple[int, list[str]]:
    """How many <img> the page has, and the start of the address of each that did not load."""
    return page.evaluate("""() => [document.images.length,
        [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80))]""")


_HOVER = """() => {
    // The point of the first trace farthest from every other point, so that the hover label is its own;
    // its position on screen; its hover text as plotted.
    const plots = [...document.querySelectorAll('.js-plotly-plot')];
    const gd = plots.reduce((a, b) => b._fullData.reduce((n, t) => n + t.x.length, 0) >
                                      a._fullData.reduce((n, t) => n + t.x.length, 0) ? b : a);
    gd.scrollIntoView({block: 'center'});
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
    const px = (t, i) => [box.left + xa._offset + xa.l2p(t.x[i]), box.top + ya._offset + ya.l2p(t.y[i])];
    const all = gd._fullData.flatMap(t => t.x.map((_, i) => px(t, i)));
    const first = gd._fullData[0];
    let best = [-1, 0];
    first.x.forEach((_, i) => {
        const [x, y] = px(first, i);
        const gap = Math.min(...all.map(([u, v]) => (u - x) ** 2 + (v - y) ** 2 || Infinity));
        if (gap > best[0]) best = [gap, i];
    });
    return {xy: px(first, best[1]), text: first.text[best[1]], traces: gd._fullData.length};
}"""


def hover_label(page) -> tuple[str, str]:
    """Hover the most isolated point of the page's largest plotly map: (its hover text in the data, the label shown).

    The label shows the text's lines (``<br>``) one under the other: its textContent joins them without a break.
    """
    point = page.evaluate(_HOVER)
    page.mouse.move(*point["xy"])
    page.wait_for_selector(".hoverlayer .hovertext text.nums", timeout=10_000)  # the label's text, not its name
    return point["text"], page.evaluate("() => document.querySelector('.hoverlayer .hovertext text.nums').textContent")


def test_the_browser_check_sees_errors_broken_images_and_outside_requests(browser, tmp_path):
    (tmp_path / "bad.html").write_text(
        '<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body><img src="missing.png" alt="">'
        '<script src="https://cdn.plot.ly/plotly-3.0.0.min.js"></script>'
        '<script>console.error("drawn badly"); notDefined();</script></body></html>')
    with serve(tmp_path) as base:
        page, problems = open_page(browser, base + "bad.html")
        assert unloaded_images(page) == [1, [base + "missing.png"]]
        page.close()
    assert "outside request: https://cdn.plot.ly/plotly-3.0.0.min.js" in problems
    assert "console error: drawn badly" in problems
    assert any(p.startswith("script error:") and "notDefined" in p for p in problems)
    assert any("404" in p for p in problems)  # the missing image, as the console reports it


def test_small_site_in_the_browser(browser, small_course, tmp_path):
    executed, pages = small_course
    build_site(executed, tmp_path / "site", pages=pages)
    with serve(tmp_path / "site") as base:
        for name in ["index.html", "1_demo.html", "1_demo_solutions.html"]:
            page, problems = open_page(browser, base + name)
            count, broken = unloaded_images(page)
            assert problems == [] and broken == [], name
            if name == "1_demo.html":
                assert count == 1
                expected, shown = hover_label(page)
                assert expected == "title: Peer review & its discontents<br>year: 2020"  # the point far from the others
                assert shown == "title: Peer review & its discontentsyear: 2020"  # its lines, as shown
            page.close()


# --- the course, executed -------------------------------------------------------------------------

def _complete(path: Path) -> bool:
    """Whether ``path`` is an executed notebook: every code cell ran, none raised."""
    try:
        code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    except Exception:  # a partial or foreign file is not a copy to publish
        return False
    return bool(code) and all(c.execution_count is not None for c in code) and not any(
        o.output_type == "error" for c in code for o in c.outputs)


@pytest.fixture(scope="module")
def course_site(tmp_path_factory, data_dir):
    """The site of this run's executed notebooks: the tests' copies (newest first), else notebook 2 run here."""
    executed = tmp_path_factory.mktemp("executed")
    wanted = {p.name for p in course_pages()}
    left = sorted(tmp_path_factory.getbasetemp().rglob("*.ipynb"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in left:
        if path.name in wanted and not (executed / path.name).exists() and _complete(path):
            shutil.copy(path, executed / path.name)
    if not (executed / "2_clustering.ipynb").exists():
        from tools.run_notebooks import execute_notebook

        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SCISCI_OUTPUTS", str(executed))
            execute_notebook(REPO_ROOT / "2_clustering.ipynb", timeout=900)
    site = tmp_path_factory.mktemp("site")
    build_site(executed, site, require_all=False)
    return site, executed


def _outputs(path: Path, mime: str) -> int:
    notebook = nbformat.read(path, as_version=4)
    return sum(mime in o.get("data", {}) for c in notebook.cells if c.cell_type == "code" for o in c.outputs)


def test_every_course_page_in_the_browser(browser, course_site, course_corpus):
    """No console errors, no request leaving the site, every figure loaded, the map drawn and its hover a title."""
    site, executed = course_site
    started, hovered = time.perf_counter(), False
    with serve(site) as base:
        for html in ["index.html", *sorted(p.name for p in site.glob("*.html") if p.name != "index.html")]:
            page, problems = open_page(browser, base + html)
            count, broken = unloaded_images(page)
            assert problems == [] and broken == [], html
            if html != "index.html":
                source = executed / html.replace(".html", ".ipynb")
                assert count >= _outputs(source, "image/png"), f"{html}: a figure of the notebook is not on its page"
                plots = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')]"
                                      ".map(p => p._fullData.length)")
                assert len(plots) == _outputs(source, "application/vnd.plotly.v1+json") and all(plots), html
            if html == "2_clustering.html":
                expected, shown = hover_label(page)
                # a record's title (its start, as a hover may shorten a long one), in the data and on the screen
                starts = {" ".join(t.split())[:40] for t in course_corpus["title"]}
                titles = [t for t in starts if t in expected]
                assert titles and titles[0] in shown, (expected, shown)
                hovered = True
            page.close()
    assert hovered, "the site has no page for notebook 2, the one with the map"
    assert time.perf_counter() - started < 60, "the browser part should stay under a minute"
