"""report.html: one self-contained page per study, checked in a real headless browser
(Debian's Chromium; .ci/run installs it): its tables and images are there and decode, nothing
overflows a laptop-sized window, and the page logs no console error."""

import json
import re
import shutil
import subprocess

import pytest

from kd_ls.layout import StudyLayout
from kd_ls.report.page import markdown_to_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Appended to a copy of the page (never to the page itself): once everything has loaded, what the
# browser made of it, as JSON in the DOM that --dump-dom prints.
CHECK = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const out = {images: images.length, decoded: images.filter(i => i.complete && i.naturalWidth > 0).length,
               tables: document.querySelectorAll("table").length,
               runRows: document.querySelectorAll("#runs + .scroll tbody tr").length,
               overflow: document.documentElement.scrollWidth - window.innerWidth,
               // the page opens with the headline paragraph, then the forest plot, before any table
               firstParagraph: (document.querySelector("h2 ~ p, h1 ~ p:not(.meta)") || {}).textContent || "",
               firstImage: (images[0] || {}).alt || "",
               forestBeforeTables: !!images[0] && !!document.querySelector("table") &&
                   !!(images[0].compareDocumentPosition(document.querySelector("table")) & Node.DOCUMENT_POSITION_FOLLOWING),
               forestWidth: images[0] ? images[0].getBoundingClientRect().width : 0};
  const pre = document.createElement("pre");
  pre.id = "kd-ls-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def browse(page, width: int) -> tuple[dict, list[str]]:
    """Load a copy of `page` with the check appended in headless Chromium at `width` pixels;
    return the check's findings and the console messages the page logged."""
    checked = page.with_name("checked.html")
    checked.write_text(page.read_text() + CHECK)
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--window-size={width},900",
                           "--virtual-time-budget=5000", "--enable-logging=stderr", "--v=0", "--dump-dom",
                           checked.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="kd-ls-check">([^<]*)</pre>', proc.stdout)
    assert found, proc.stderr[-2000:]
    return json.loads(found.group(1)), [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install chromium; .ci/run installs it)")
def test_report_page_renders_in_a_browser(reference_study, tmp_path):
    page = StudyLayout.of(reference_study).report_html
    text = page.read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//|<link|<script|@import|url\(", text)  # self-contained
    local = tmp_path / "report.html"
    shutil.copy(page, local)
    pngs = len(list(StudyLayout.of(reference_study).plots.glob("*.png")))
    for width in (1366, 800):  # a laptop, and half of one
        found, console = browse(local, width)
        assert console == []  # no error, no warning, no message at all
        assert found["images"] >= pngs and found["decoded"] == found["images"]
        assert found["tables"] >= 5 and found["runRows"] == 16  # every planned run has its row
        assert found["overflow"] <= 0  # wide tables scroll in their own box; the page never does
        assert found["firstParagraph"].startswith("Primary (") and "Precondition:" in found["firstParagraph"]
        assert found["firstImage"].startswith("Forest plot") and found["forestBeforeTables"]
        assert found["forestWidth"] > 0.5 * min(width, 1120) - 100  # drawn wide enough to read


def test_markdown_subset_renders_and_unknown_text_stays_text():
    html = markdown_to_html("\n".join([
        "# Verdict", "", "- one **bold** `code` item", "  continued", "- two", "",
        "| a | b |", "|---|---|", "| 1 | <x> |", "",
        "<details>", "<summary>Per seed</summary>", "", "## New section", "text <script>alert(1)</script>",
        "</details>", "", "~~~ something else ~~~",
    ]), shift=1)
    assert '<h2 id="verdict">Verdict</h2>' in html and '<h3 id="new-section">New section</h3>' in html
    assert "<li>one <strong>bold</strong> <code>code</code> item continued</li><li>two</li>" in html
    assert "<th>a</th><th>b</th>" in html and "<td>&lt;x&gt;</td>" in html
    assert "<details>" in html and "<summary>Per seed</summary>" in html and "</details>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html and "<p>~~~ something else ~~~</p>" in html
