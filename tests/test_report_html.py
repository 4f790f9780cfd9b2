"""``cfbench report DIR --html FILE``: the page holds the manifest, the table and every plot,
inline and with no network address, both as written (html.parser) and as a browser builds it
(headless Chromium, when installed)."""

import re
import shutil
import subprocess
from html.parser import HTMLParser

import pandas as pd
import pytest

from conftest import run_cli

pytest.importorskip("matplotlib")

SOLVERS = ("p-max", "best-uniform")
EXPECTED_PLOTS = {"objective-cdf", "latency", "feasibility", "urllc-per-terminal-se-cdf",
                  "urllc-per-terminal-ee-cdf", "urllc-per-terminal-error-probability-cdf"}


class Page(HTMLParser):
    """What the tests look for: the table's rows, each plot's svg and path counts, every URL-bearing attribute."""

    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.table_cells: list[list[str]] = []
        self.plots: dict[str, dict[str, int]] = {}
        self.links: list[str] = []
        self.ids: set[str] = set()
        self._plot = None
        self._in_table = False
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for name in ("src", "href", "xlink:href", "action", "data"):
            if attrs.get(name):
                self.links.append(attrs[name])
        if tag == "figure" and "data-plot" in attrs:
            self._plot = attrs["data-plot"]
            self.plots[self._plot] = {"svg": 0, "path": 0}
        elif self._plot and tag in ("svg", "path"):
            self.plots[self._plot][tag] += 1
        if tag == "table" and attrs.get("id") == "comparison-table":
            self._in_table = True
        elif self._in_table and tag == "tr":
            self.table_cells.append([])
        elif self._in_table and tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "figure":
            self._plot = None
        elif tag == "table":
            self._in_table = False
        elif tag in ("td", "th") and self._cell is not None:
            self.table_cells[-1].append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    return page


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "run"
    res = run_cli("run", "--problem", "urllc", "--scenario", "tiny", "--solvers", ",".join(SOLVERS),
                  "--instances", "4", "--workers", "1", "--quiet", "--out", str(out))
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def page_file(run_dir):
    path = run_dir.parent / "report.html"
    res = run_cli("report", str(run_dir), "--html", str(path))
    assert res.returncode == 0, res.stderr
    assert "best-uniform" in res.stdout  # the printed table is unchanged by --html
    return path


def check_page(page: Page) -> None:
    header, *lines = page.table_cells
    assert header[:2] == ["rank", "solver"] and "mean_objective" in header
    assert sorted(line[1] for line in lines) == sorted(SOLVERS)
    assert {"manifest", "comparison-table"} <= page.ids
    assert set(page.plots) == EXPECTED_PLOTS
    for name, counts in page.plots.items():
        assert counts["svg"] == 1 and counts["path"] > 10, (name, counts)


def test_page_has_manifest_table_and_every_plot(page_file, run_dir):
    text = page_file.read_text()
    check_page(parse(text))
    manifest = (run_dir / "manifest.json").read_text()
    assert "cfbench run --problem urllc --scenario tiny" in text and "git_commit" in text
    assert '"scenario": "tiny"' in manifest


def test_page_is_self_contained(page_file):
    text = page_file.read_text()
    page = parse(text)
    assert all(link.startswith("#") for link in page.links), [l for l in page.links if not l.startswith("#")]
    assert not {"script", "link", "img", "iframe", "object"} & set(page.tags)
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]|url\((?!#)|@import", text)  # url(#id): clip paths


def test_urllc_per_terminal_values_match_the_stored_objective(run_dir):
    """The per-terminal plots redraw the instances; the recomputed Omega must be the stored one."""
    import json

    from cfbench.problems.urllc import Urllc

    rows = pd.read_parquet(run_dir / "results.parquet")
    plots = Urllc().report_plots(rows, json.loads((run_dir / "manifest.json").read_text()))
    assert [title for title, _ in plots] == ["Per-terminal SE CDF", "Per-terminal EE CDF",
                                             "Per-terminal error probability CDF"]
    caption = plots[0][1]._suptitle.get_text()
    assert float(re.search(r"= ([0-9.e+-]+)$", caption).group(1)) < 1e-9, caption


def test_problem_without_plots_and_empty_run(run_dir):
    import json

    from cfbench import Problem
    from cfbench.report_html import render_html

    rows = pd.read_parquet(run_dir / "results.parquet")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert Problem().report_plots(rows, manifest) == []
    page = parse(render_html(rows, manifest, problem=None, problem_note="problem 'urllc' is not registered"))
    assert set(page.plots) == {"objective-cdf", "latency", "feasibility"}
    empty = parse(render_html(rows.iloc[:0], manifest, problem=None))
    assert "manifest" in empty.ids and not empty.plots


def test_html_into_a_missing_folder_is_one_line(run_dir, tmp_path):
    res = run_cli("report", str(run_dir), "--html", str(tmp_path / "nope" / "r.html"))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "nope" in res.stderr


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="needs Debian's 'chromium' package on PATH (apt-get install chromium)")
def test_page_renders_in_headless_chromium(page_file, tmp_path):
    """Chromium builds the DOM offline (every host unresolvable); the table and every plot are in it."""
    res = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--host-resolver-rules=MAP * ~NOTFOUND",
         "--dump-dom", page_file.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    check_page(parse(res.stdout))
