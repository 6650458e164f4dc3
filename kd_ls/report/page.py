"""report.html: a study's report as one self-contained page.

The verdict (verdict.md, rendered), the figures (embedded as base64 PNG) and every run's key
numbers (results.csv), with its styles inline: no network, no external CSS or JavaScript, so
the file can be mailed, archived or opened offline. verdict.md is rendered by a small renderer
of the markdown kd-ls writes (headings, lists, pipe tables, <details> blocks, `code`,
**bold**); anything else shows as escaped text, so a new kind of section never breaks the page.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import re
import struct
from pathlib import Path
from typing import Any, Optional

from kd_ls import __version__
from kd_ls.io import atomic_write_text
from kd_ls.layout import AnalysisLayout, StudyLayout

# results.csv columns shown per run, with their headings; fractions shown as percent.
RUN_COLUMNS = (("role", "role"), ("status", "status"), ("seed", "seed"), ("alpha", "alpha"),
               ("teacher_alpha", "teacher alpha"), ("temperature", "T"), ("test_acc", "test acc (%)"),
               ("test_ece", "ECE (%)"), ("seconds", "seconds"), ("run_id", "run"), ("error", "error"))
PERCENT = ("test_acc", "test_ece")

STYLE = """
:root { color-scheme: light; --line: #d8dde3; --muted: #5b6470; --accent: #1f5fa8; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d232b;
       max-width: 1120px; margin: 0 auto; padding: 1.5rem 1.25rem 4rem; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.3rem; margin: 2rem 0 .5rem; padding-bottom: .2rem; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.1rem; margin: 1.5rem 0 .4rem; }
h4, h5, h6 { font-size: 1rem; margin: 1.2rem 0 .3rem; }
p.meta { color: var(--muted); margin: 0 0 1rem; }
.scroll { overflow-x: auto; margin: .5rem 0 1rem; }
table { border-collapse: collapse; font-size: .9rem; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: .25rem .55rem; text-align: left; vertical-align: top; }
th { background: #f1f4f7; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
td.failed { color: #a61b1b; font-weight: 600; }
code { font: .88em ui-monospace, SFMono-Regular, Menlo, monospace; background: #f1f4f7; padding: 0 .2em; }
pre { background: #f1f4f7; padding: .6rem; overflow-x: auto; }
details { margin: .5rem 0; } summary { cursor: pointer; color: var(--accent); }
.figures { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; border: 1px solid var(--line); padding: .5rem; flex: 0 1 calc(50% - .5rem);
         min-width: min(100%, 360px); }
figure.wide, .forest figure { flex-basis: 100%; }
figure img { width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: .85rem; margin-top: .3rem; }
nav { font-size: .9rem; margin: 0 0 1rem; display: flex; flex-wrap: wrap; gap: .25rem 1rem; } nav a { color: var(--accent); }
"""


# ---------------------------------------------------------------- markdown subset


def _inline(text: str) -> str:
    """Escaped text with `code` and **bold** (no other inline syntax: '*' is common in T*)."""
    parts = re.split(r"(`[^`]+`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
        else:
            out.append(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(part)))
    return "".join(out)


def _slug(title: str) -> str:
    """An id for a heading: its words, lower case, joined by '-'."""
    return "-".join(re.findall(r"\w+", title.lower())) or "section"


def _cells(line: str) -> list[str]:
    """The cells of a pipe-table line."""
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table(header: list[str], rows: list[list[str]], classes: Optional[list[list[str]]] = None) -> str:
    """An HTML table (cells already HTML, `classes` per cell) in a horizontally scrolling box."""
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = []
    for i, row in enumerate(rows):
        row_classes = classes[i] if classes else [""] * len(row)
        body.append("<tr>" + "".join(f'<td class="{c}">{cell}</td>' if c else f"<td>{cell}</td>"
                                     for cell, c in zip(row, row_classes)) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


_SEPARATOR = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_ITEM = re.compile(r"^\s*(?:[-*]|\d+\.)\s+(.*)$")
_TAG = re.compile(r"^\s*(</?details>|<details open>|<summary>.*</summary>)\s*$")


def markdown_to_html(text: str, shift: int = 0) -> str:
    """HTML for the markdown subset kd-ls writes; headings moved `shift` levels down."""
    lines = text.splitlines()
    out: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []

    def close() -> None:
        if paragraph:
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in items) + "</ul>")
            items.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            close()
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith("```")), len(lines))
            out.append(f"<pre>{html.escape(chr(10).join(lines[i + 1:end]))}</pre>")
            i = end + 1
            continue
        if stripped.startswith("|") and i + 1 < len(lines) and _SEPARATOR.match(lines[i + 1].strip()):
            close()
            header = [_inline(cell) for cell in _cells(stripped)]
            rows = []
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append([_inline(cell) for cell in _cells(lines[i])])
                i += 1
            out.append(_table(header, rows))
            continue
        heading, item, tag = _HEADING.match(stripped), _ITEM.match(line), _TAG.match(line)
        if not stripped:
            close()
        elif tag:
            close()
            summary = re.match(r"\s*<summary>(.*)</summary>", line)
            out.append(f"<summary>{_inline(summary.group(1))}</summary>" if summary else tag.group(1))
        elif heading:
            close()
            level = min(6, len(heading.group(1)) + shift)
            out.append(f'<h{level} id="{_slug(heading.group(2))}">{_inline(heading.group(2))}</h{level}>')
        elif item:
            if paragraph:
                close()
            items.append(item.group(1))
        elif items and line.startswith((" ", "\t")):
            items[-1] += " " + stripped  # a list item continued on the next line
        else:
            if items:
                close()
            paragraph.append(stripped)
        i += 1
    close()
    return "\n".join(out)


# ---------------------------------------------------------------- the page's parts


def _number(key: str, value: str) -> str:
    """A results.csv value as shown: fractions in percent, seconds to a tenth, text escaped."""
    try:
        number = float(value)
    except ValueError:
        return html.escape(value)
    if key in PERCENT:
        return f"{100 * number:.2f}"
    return f"{number:.1f}" if key == "seconds" else f"{number:g}"


def runs_table(rows: list[dict[str, str]]) -> str:
    """Every run's identity, status and key numbers (failed runs' errors included)."""
    columns = [(key, title) for key, title in RUN_COLUMNS if any(row.get(key) for row in rows)]
    body, classes = [], []
    for row in rows:
        body.append([_number(key, row[key]) if row.get(key) else "" for key, _ in columns])
        failed = row.get("status") not in ("done", None)
        classes.append(["failed" if failed and key == "status" else "" for key, _ in columns])
    return _table([html.escape(title) for _, title in columns], body, classes)


def figure(path: Path, caption: str) -> str:
    """A PNG embedded in the page; a wide or large one (several panels) gets a row of its own."""
    png = path.read_bytes()
    width, height = struct.unpack(">II", png[16:24])  # the PNG header's IHDR chunk
    wide = ' class="wide"' if width > 1.6 * height or width >= 1400 else ""
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure{wide}><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def figures(study_dir: Path, rows: list[dict[str, str]]) -> list[str]:
    """The study's plots, then the first seed's teacher analyses, as embedded figures."""
    layout = StudyLayout.of(study_dir)
    forest = layout.forest_plot
    found = [(png, png.stem.replace("_", " ")) for png in sorted(layout.plots.glob("*.png")) if png != forest]
    alphas = sorted({float(r["alpha"]) for r in rows if r.get("role") == "teacher" and r.get("status") == "done"})
    for alpha in alphas:
        analysis = AnalysisLayout(layout.teacher_analysis(alpha))
        for png, what in ((analysis.projection, "Müller projection"), (analysis.reliability, "reliability diagram")):
            if png.is_file():
                found.append((png, f"teacher alpha={alpha:g}: {what}"))
    return [figure(png, caption) for png, caption in found]


def render_page(study_dir: Path) -> str:
    """The whole report page of a study folder (which holds verdict.md and results.csv)."""
    layout = StudyLayout.of(study_dir)
    manifest: dict[str, Any] = json.loads(layout.manifest.read_text()) if layout.manifest.is_file() else {}
    name = manifest.get("study", {}).get("name", study_dir.name)
    with open(layout.results, newline="") as f:
        rows = list(csv.DictReader(f))
    done = sum(row.get("status") == "done" for row in rows)
    failed = sum(row.get("status") == "failed" for row in rows)
    verdict = layout.verdict_md.read_text() if layout.verdict_md.is_file() else "No verdict.md yet."
    plots = figures(study_dir, rows)
    body = markdown_to_html(verdict, shift=1)
    forest = layout.forest_plot
    if forest.is_file():  # the page opens with the headline paragraph and the forest plot under it
        head, cut, rest = body.partition("</p>")
        caption = ("Forest plot: every comparison on one axis, the primary on top; thick bars decide the word "
                   "(secondaries: own 95% CI, exploratory), thin bars are family-wise (Bonferroni); filled = decided")
        body = f'{head}{cut}<div class="figures forest">{figure(forest, caption)}</div>{rest}'

    sections = [(i, html.unescape(re.sub("<[^>]+>", "", title)))
                for i, title in re.findall(r'<h[23] id="([^"]+)">(.*?)</h[23]>', body)] + [("figures", "Figures"), ("runs", "Runs")]
    nav = "<nav>" + "".join(f'<a href="#{i}">{html.escape(title)}</a>' for i, title in sections) + "</nav>"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>kd-ls study {html.escape(name)}</title><style>{STYLE}</style></head><body>",
        f"<h1>kd-ls study {html.escape(name)}</h1>",
        f'<p class="meta">{len(rows)} planned runs: {done} done, {failed} failed. Folder <code>{html.escape(str(study_dir))}'
        f"</code>; written by kd-ls {html.escape(__version__)} from results.csv and verdict.md.</p>",
        nav, body,
        '<h2 id="figures">Figures</h2>', f'<div class="figures">{"".join(plots)}</div>' if plots else "<p>No figures.</p>",
        '<h2 id="runs">Runs</h2>', runs_table(rows),
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report_page(study_dir: Path) -> Path:
    """Write report.html into the study folder (atomically); return its path."""
    path = StudyLayout.of(study_dir).report_html
    atomic_write_text(path, render_page(Path(study_dir)))
    return path
