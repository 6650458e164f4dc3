"""Reporting: a study folder's runs -> results.csv, verdict.json / verdict.md, plots, report.html.

`write` (the report of one study folder, `kd-ls report`), `render` (verdict.md), `page`
(report.html), `figures` (the study's plots), `compare` (several studies side by side). It reads
run records and decides through kd_ls.verdict; it never imports the runner.
"""
