"""W&B for whole studies: one W&B run per study run (grouped, tagged, linked to its
teacher's checkpoint artifact) and a summary run carrying the results, verdict and plots.

Every W&B run of a study, online or offline, keeps its local files in the study's one W&B
folder (StudyLayout.wandb), so `kd-ls sync STUDY_DIR` finds and uploads all of them.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

from kd_ls.layout import StudyLayout
from kd_ls.lightning.wandb_logger import save_files
from kd_ls.study.plan import PlannedRun
from kd_ls.study.spec import Study


def artifact_name(run_id: str) -> str:
    """The W&B artifact name of a study run's checkpoint."""
    return f"ckpt-{run_id}"


def study_wandb_logger(study: Study, run: PlannedRun, folder: Path) -> dict[str, Any]:
    """Logger config (class_path/init_args) for the study run in run folder `folder`: Lightning's
    files stay there, W&B's go to the study's W&B folder."""
    tags = [f"alpha={run.alpha:g}", f"seed={run.seed}"] + ([f"T={run.temperature:g}"] if run.temperature else [])
    if run.teacher_alpha is not None:
        tags.append(f"teacher_alpha={run.teacher_alpha:g}")
    fields = {"role": run.role, "seed": run.seed, "alpha": run.alpha, "teacher_alpha": run.teacher_alpha,
              "temperature": run.temperature, "run_id": run.run_id, "study": study.name}
    return {
        "class_path": "kd_ls.lightning.wandb_logger.KDWandbLogger",
        "init_args": {
            "project": study.wandb.project, "entity": study.wandb.entity, "offline": study.wandb.offline,
            "save_dir": str(folder), "name": f"{study.name}/{run.label()}", "group": study.name,
            "job_type": run.role, "tags": tags, "fields": fields,
            "teacher_artifact": f"{artifact_name(run.teacher_id)}:latest" if run.teacher_id else None,
            "checkpoint_artifact": artifact_name(run.run_id) if run.role == "teacher" else None,
            "study_dir": study.output,
        },
    }


def log_study_summary(study: Study, study_dir: Path) -> None:
    """A W&B run of job type 'summary' carrying the results table, the verdict and the plots."""
    import wandb

    layout = StudyLayout.of(study_dir)
    with open(layout.results) as f:
        rows = list(csv.reader(f))
    settings = dict(project=study.wandb.project, entity=study.wandb.entity, group=study.name, job_type="summary",
                    name=f"{study.name}/summary", dir=str(layout.wandb_dir), config=study.to_dict())
    run = None
    # After a run of the study found W&B unreachable (and warned), go offline at once.
    online = not study.wandb.offline and not layout.wandb_unreachable.exists()
    for mode in ([None] if online else []) + ["offline"]:
        try:
            run = wandb.init(mode=mode, **settings)
            break
        except Exception as err:  # noqa: BLE001 - the summary is a convenience; the files are the record
            warnings.warn(f"W&B summary run failed ({type(err).__name__}) in mode {mode or 'online'}")
    if run is None:
        return
    payload: dict[str, Any] = {"results": wandb.Table(columns=rows[0], data=rows[1:])}
    for png in sorted(layout.plots.glob("*.png")):
        payload[f"plots/{png.stem}"] = wandb.Image(str(png))
    run.log(payload)
    save_files(run, [layout.verdict_md, layout.verdict_json, layout.results, layout.report_html])
    run.finish()


class SyncError(RuntimeError):
    """Uploading offline W&B runs failed; the message is one line saying why."""


def offline_runs(folder: Path) -> list[Path]:
    """W&B offline run folders under `folder` (a study's W&B folder, or a run folder's) that
    have not been uploaded yet (`wandb sync` marks an uploaded run with a .synced file)."""
    found = (p for p in sorted(Path(folder).rglob("offline-run-*")) if p.is_dir())
    return [p for p in found if any(p.glob("run-*.wandb")) and not any(p.glob("run-*.wandb.synced"))]


def check_reachable(base_url: str, timeout: float) -> None:
    """Raise SyncError unless the W&B server answers at all within `timeout` seconds: without
    a network, `wandb sync` retries for many minutes without a word."""
    import urllib.error
    import urllib.request

    try:
        # a fresh opener: the proxy settings of now (urlopen keeps the first call's for the process)
        urllib.request.build_opener().open(base_url, timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # an answer (even 401 or 404): the server is there
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise SyncError(f"W&B at {base_url} is unreachable ({reason}); the runs stay offline, "
                        "try again with a network") from None


def sync_offline_runs(runs: list[Path], timeout: float, probe_timeout: float = 10.0) -> str:
    """Upload offline runs with `wandb sync` (one call for all of them); return its last line.

    Raises SyncError (one line) when W&B is unreachable, when `wandb sync` leaves a run
    unmarked (not uploaded), or when it has not finished after `timeout` seconds."""
    import wandb

    base_url = wandb.setup().settings.base_url
    check_reachable(base_url, probe_timeout)
    command = [sys.executable, "-m", "wandb", "sync", "--skip-synced", *map(str, runs)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SyncError(f"`wandb sync` did not finish within {timeout:g} s ({base_url}); runs it finished are "
                        "marked synced, the same command uploads the rest") from None
    lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    # `wandb sync` can exit 0 having uploaded nothing: a run counts as uploaded once it is marked.
    left = [run for run in runs if not any(run.glob("run-*.wandb.synced"))]
    if proc.returncode != 0 or left:
        errors = [line for line in lines if "ERROR" in line or "Error" in line] or lines or ["no output"]
        raise SyncError(f"`wandb sync` uploaded {len(runs) - len(left)} of {len(runs)} runs "
                        f"(exit {proc.returncode}): {errors[-1]}")
    return lines[-1] if lines else "done"
