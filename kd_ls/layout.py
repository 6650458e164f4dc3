"""The one owner of kd-ls's on-disk layout: every file a run or a study writes, by name.

A *run folder* is one `kd-ls fit` (Lightning's `trainer.default_root_dir`); a *study folder*
holds a study's manifest, its run folders under `runs/<run id>/` and the report built from
them. Nothing else in kd-ls spells these paths out: code asks a layout object for them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunLayout:
    """The files of one run folder."""

    root: Path

    @classmethod
    def of(cls, root: str | os.PathLike[str]) -> "RunLayout":
        """The layout of the run folder `root`."""
        return cls(Path(root))

    @classmethod
    def of_checkpoint(cls, checkpoint: str | os.PathLike[str]) -> "RunLayout":
        """The run folder a checkpoint was written into (its `checkpoints/` folder's parent)."""
        return cls(Path(checkpoint).resolve().parent.parent)

    @property
    def config(self) -> Path:
        """The resolved Lightning CLI config of the run."""
        return self.root / "config.yaml"

    @property
    def study_config(self) -> Path:
        """The `kd-ls fit` config a study generated for this run."""
        return self.root / "study_run.yaml"

    @property
    def checkpoints(self) -> Path:
        """Folder of the run's checkpoints."""
        return self.root / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        """The last-epoch checkpoint (written when the run ends)."""
        return self.checkpoints / "last.ckpt"

    @property
    def resume_checkpoint(self) -> Path:
        """The resumable in-run checkpoint (written during training, removed when it ends)."""
        return self.checkpoints / "resume.ckpt"

    @property
    def metrics(self) -> Path:
        """Final train/val/test metrics; written last, so its presence means the run ended."""
        return self.root / "metrics.json"

    @property
    def metrics_csv(self) -> Path:
        """Lightning's CSVLogger log: one row per logged step and epoch (kept across a resume)."""
        return self.root / "metrics.csv"

    @property
    def provenance(self) -> Path:
        """Versions, git commit, seed and checksums of the run."""
        return self.root / "provenance.json"

    @property
    def record(self) -> Path:
        """A study's record of the run (done / failed / interrupted, checksums)."""
        return self.root / "run.json"

    @property
    def test_outputs(self) -> Path:
        """A teacher's test-split logits and labels (reports derive per-T numbers from them)."""
        return self.root / "test_outputs.pt"

    def logit_cache(self, key: str) -> Path:
        """A teacher-logit cache file of this (teacher) run, named by what it was built from."""
        return self.root / "logit_cache" / f"{key}.pt"

    def analysis(self, split: str) -> Path:
        """Default output folder of `kd-ls analyze` for one split."""
        return self.root / "analysis" / split

    def evaluation(self, name: str) -> Path:
        """Output folder of a `kd-ls validate` / `kd-ls test` run on this run's checkpoint."""
        return self.root / "evaluations" / name


@dataclass(frozen=True)
class StudyLayout:
    """The files of one study folder."""

    root: Path

    @classmethod
    def of(cls, root: str | os.PathLike[str]) -> "StudyLayout":
        """The layout of the study folder `root`."""
        return cls(Path(root))

    @property
    def manifest(self) -> Path:
        """study.json: the study spec and its planned runs."""
        return self.root / "study.json"

    @property
    def lock(self) -> Path:
        """The flock file that keeps a second study out."""
        return self.root / ".lock"

    @property
    def owner(self) -> Path:
        """owner.json: the study file the folder belongs to (kd_ls/study/ownership.py)."""
        return self.root / "owner.json"

    @property
    def runs(self) -> Path:
        """Folder of the run folders."""
        return self.root / "runs"

    def run(self, run_id: str) -> RunLayout:
        """The run folder of one planned run."""
        return RunLayout(self.runs / run_id)

    @property
    def results(self) -> Path:
        """results.csv: one row per planned run."""
        return self.root / "results.csv"

    @property
    def verdict_json(self) -> Path:
        """The verdict as data."""
        return self.root / "verdict.json"

    @property
    def verdict_md(self) -> Path:
        """The verdict as markdown."""
        return self.root / "verdict.md"

    @property
    def primary_history(self) -> Path:
        """Every declaration of the primary question and every look at it (kd_ls/verdict/sequential.py)."""
        return self.root / "primary_history.json"

    @property
    def report_html(self) -> Path:
        """The self-contained report page."""
        return self.root / "report.html"

    @property
    def plots(self) -> Path:
        """Folder of the study's figures."""
        return self.root / "plots"

    @property
    def forest_plot(self) -> Path:
        """The forest plot of every comparison, which report.html opens with."""
        return self.plot("forest")

    def plot(self, name: str) -> Path:
        """One figure of the study, e.g. plot('paired_difference_vs_temperature')."""
        return self.plots / f"{name}.png"

    def teacher_analysis(self, alpha: float, seed: int | None = None) -> Path:
        """`kd-ls analyze` output for one alpha's teacher: the first seed's without `seed` (the folder
        name reports have always used), another seed's with it."""
        suffix = "" if seed is None else f"_seed{seed}"
        return self.root / "analysis" / f"teacher_alpha{alpha:g}{suffix}"

    @property
    def submitit(self) -> Path:
        """Default folder of submitit's job files."""
        return self.root / "submitit"

    @property
    def wandb(self) -> Path:
        """Where the study's W&B runs (and offline runs) are kept."""
        return self.root / "wandb"

    @property
    def wandb_dir(self) -> Path:
        """The `dir` given to W&B for the study's runs: W&B adds `wandb/` (`wandb` above) itself."""
        return self.wandb.parent

    @property
    def wandb_staging(self) -> Path:
        """W&B's artifact staging area for the study (copies of logged checkpoints until uploaded)."""
        return self.wandb / "artifact-staging"

    @property
    def wandb_unreachable(self) -> Path:
        """Present once W&B could not be reached during the study: its other runs log offline at once."""
        return self.wandb / "kd-ls-unreachable.txt"

    @property
    def log(self) -> Path:
        """The study's plain-text progress log."""
        return self.root / "study.log"


@dataclass(frozen=True)
class AnalysisLayout:
    """The files `kd-ls analyze` writes into its output folder."""

    root: Path

    @property
    def metrics(self) -> Path:
        """Every metric of the analysed checkpoint."""
        return self.root / "metrics.json"

    @property
    def features(self) -> Path:
        """Logits, penultimate features and labels of the split."""
        return self.root / "features.pt"

    @property
    def projection(self) -> Path:
        """Müller projection of three classes."""
        return self.root / "muller_projection.png"

    @property
    def projection_points(self) -> Path:
        """The Müller projection's points, labels and template positions (torch file), so a study
        report can draw every teacher's projection without recomputing it."""
        return self.root / "muller_projection.pt"

    @property
    def reliability(self) -> Path:
        """Reliability diagram."""
        return self.root / "reliability_diagram.png"
