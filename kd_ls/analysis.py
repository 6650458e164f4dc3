"""The analysis of one checkpoint (`kd-ls analyze`): every metric of science.md §4-5, plus plots.

The network is rebuilt from the checkpoint alone (`kd_ls.lightning.checkpoint.load_network`) and
evaluated on the data module of its run folder's config.yaml (or a `--data` file), exactly as training evaluated it:
same split, same normalisation, same `kd_ls.evaluation` functions. Written to the output folder:

- `metrics.json`: classification and calibration metrics, ECE after temperature scaling (T* fitted
  on the val split), smoothness indices, cluster tightness of the penultimate features, Müller's
  mutual-information estimate, and agreement / KL with the teacher for a student checkpoint;
- `muller_projection.png` and `reliability_diagram.png`, titled with the run (alpha, seed, run id);
- `muller_projection.pt`: the projected points, their labels and the three templates' positions, in
  the plane's units (a study report draws every teacher's projection from these);
- `features.pt`: the split's logits, penultimate features and labels (plus the teacher's logits
  for a student), so any metric can be recomputed without the network.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kd_ls import metrics
from kd_ls.data import ArrayDataModule
from kd_ls.evaluation import (
    SplitOutputs,
    calibration_after_scaling,
    classification_metrics,
    cluster_metrics,
    datamodule_outputs,
    smoothness_metrics,
    teacher_agreement_metrics,
)
from kd_ls.io import atomic_save_tensor, atomic_write_json
from kd_ls.layout import AnalysisLayout, RunLayout
from kd_ls.lightning.checkpoint import load_network, read_checkpoint
from kd_ls.plots import save_figure
from kd_ls.plots.calibration import plot_reliability_diagram
from kd_ls.plots.projection import plot_muller_projection

SMOOTHNESS_TEMPERATURES = (1.0, 2.0, 4.0, 8.0)
MI_PER_CLASS = 300  # Müller et al.: N = 600 training examples, 300 of each of the two classes.
# Without augmentation Y | X would be deterministic (sigma^2 = 0) and the estimate would sit at its
# ceiling log N whatever the model; Gaussian noise of this std, in normalised input units (i.e. a
# tenth of each channel's training-set std), stands in for augmentation as the source of Y's spread.
MI_INPUT_NOISE_STD = 0.1
PROJECTION_PER_CLASS = 100  # science.md §5: 100 examples per class in the Müller projection.
# Separate seeds per random choice, so changing one setting (e.g. the number of views) leaves the
# other random draws (which examples are projected) unchanged.
SEED_MI_EXAMPLES, SEED_MI_VIEWS, SEED_PROJECTION = 0, 1, 2


def parse_classes(text: str, class_names: Sequence[str]) -> tuple[int, int, int]:
    """Three class indices from `A,B,C`, each an index or one of `class_names`.

    Names are looked up first, so for datasets whose names are digits ('0'...'9') the two agree.
    Raises ValueError (prefixed `--classes:`) unless there are three distinct valid classes.
    """
    parts = [p.strip() for p in text.split(",")]
    indices = []
    for part in parts:
        if part in class_names:
            indices.append(list(class_names).index(part))
        else:
            try:
                indices.append(int(part))
            except ValueError:
                raise ValueError(f"--classes: '{part}' is neither a class index nor a class name") from None
    if len(indices) != 3 or len(set(indices)) != 3 or not all(0 <= i < len(class_names) for i in indices):
        raise ValueError(f"--classes: need three distinct classes in 0..{len(class_names) - 1}, got '{text}'")
    return indices[0], indices[1], indices[2]


def analyze_checkpoint(
    ckpt: str,
    datamodule: ArrayDataModule,
    out_dir: Path,
    split: str = "test",
    classes: Sequence[int] = (0, 1, 2),
    views: int = 5,
    device: Optional[str | torch.device] = None,
) -> dict[str, float]:
    """Evaluate a kd-ls checkpoint on one split; write metrics.json, two PNGs and features.pt.

    Args:
        ckpt: a kd-ls checkpoint (teacher or student).
        datamodule: the data module the checkpoint was trained on (set up here if it is not yet).
            Used without a trainer, so evaluation batches are never augmented.
        out_dir: output folder (created).
        split: 'test' or 'val'. Temperature scaling is always fitted on 'val', so with
            split='val' the ECE after scaling is an in-sample number.
        classes: three class indices for the Müller projection; the first two also define the
            logit difference whose mutual information with the example index is estimated.
        views: views per example for the mutual information (>= 2, since the spread of a single
            view is 0): augmentation views when the data module augments, otherwise the inputs
            plus Gaussian noise of std MI_INPUT_NOISE_STD in normalised units (see metrics.json
            `mi_input_noise_std`).
        device: where to run; None picks cuda when available, else cpu.

    Returns:
        The metrics written to metrics.json: acc, (acc5), nll, ece, mce, ts_temperature, ece_ts,
        nll_ts, smoothness_T1/2/4/8, r2, nc1, variance_ratio, cdnv, silhouette, stability,
        davies_bouldin, calinski_harabasz, mutual_information with mi_examples, mi_views and
        mi_input_noise_std, and for a student whose teacher checkpoint exists agreement and
        kl_teacher. All of them are computed with seeded generators, so reruns agree.
    """
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    if views < 2:
        raise ValueError(f"--views must be >= 2 (one view has no spread to estimate), got {views}")
    run_device = _resolve_device(device)
    hparams = read_checkpoint(ckpt, "CKPT")["hyper_parameters"]
    datamodule.setup()
    num_classes = datamodule.num_classes
    if hparams["num_classes"] != num_classes or tuple(hparams["input_shape"]) != datamodule.input_shape:
        raise ValueError(
            f"CKPT: '{ckpt}' was trained on {hparams['num_classes']} classes of shape {tuple(hparams['input_shape'])}, "
            f"but the data has {num_classes} classes of shape {datamodule.input_shape}"
        )
    classes = tuple(int(c) for c in classes)
    if len(classes) != 3 or len(set(classes)) != 3 or not all(0 <= c < num_classes for c in classes):
        raise ValueError(f"classes: need three distinct classes in 0..{num_classes - 1}, got {classes}")

    net = load_network(ckpt, num_classes, "CKPT").to(run_device)
    outputs = datamodule_outputs(net, datamodule, split, run_device)
    val = datamodule_outputs(net, datamodule, "val", run_device, with_features=False)

    values = classification_metrics(outputs.logits, outputs.labels)
    values.update(calibration_after_scaling(outputs, val))
    values.update(smoothness_metrics(outputs, SMOOTHNESS_TEMPERATURES))
    values.update(cluster_metrics(outputs))
    values["davies_bouldin"] = metrics.davies_bouldin_score(outputs.features, outputs.labels).item()
    values["calinski_harabasz"] = metrics.calinski_harabasz_score(outputs.features, outputs.labels).item()
    values.update(_mutual_information(net, datamodule, classes[:2], views, run_device))

    saved = {"logits": outputs.logits.cpu(), "features": outputs.features.cpu(), "labels": outputs.labels.cpu()}
    teacher_ckpt = hparams.get("teacher_ckpt")
    if teacher_ckpt and Path(teacher_ckpt).is_file():
        teacher = load_network(teacher_ckpt, num_classes).to(run_device)
        teacher_logits = datamodule_outputs(teacher, datamodule, split, run_device, with_features=False).logits
        values.update(teacher_agreement_metrics(outputs.logits, teacher_logits))
        saved["teacher_logits"] = teacher_logits.cpu()
    elif teacher_ckpt:
        warnings.warn(f"teacher checkpoint '{teacher_ckpt}' of this student is missing; no agreement/KL metrics")

    out = AnalysisLayout(Path(out_dir))
    atomic_write_json(out.metrics, values)
    atomic_save_tensor(out.features, saved)
    run = run_label(ckpt, hparams)
    plot_reliability_diagram(
        F.softmax(outputs.logits, -1), outputs.labels, path=out.reliability,
        title=f"Reliability diagram, {run}\n({split} split, N = {outputs.labels.shape[0]})",
    )
    _plot_projection(net, outputs, classes, datamodule.class_names, out, f"{run}\n({split} split; units: mean "
                     "distance between the 3 templates)")
    return values


def run_label(ckpt: str, hparams: dict) -> str:
    """'alpha=<a>, seed=<s>, run <id>' for plot titles: alpha from the checkpoint, the seed from its
    run folder's provenance.json and the run id from the folder's name ('?' when not known)."""
    run = RunLayout.of_checkpoint(ckpt)
    seed = json.loads(run.provenance.read_text()).get("seed") if run.provenance.is_file() else None
    alpha = hparams.get("alpha")
    alpha_text = "?" if alpha is None else format(alpha, "g")
    return f"alpha={alpha_text}, seed={'?' if seed is None else seed}, run {run.root.name}"


def _resolve_device(device: Optional[str | torch.device]) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device: cuda was asked for but no CUDA device is available")
    return resolved


def _mutual_information(
    net: nn.Module, dm: ArrayDataModule, pair: Sequence[int], views: int, device: torch.device
) -> dict[str, float]:
    """Müller's I(X; Y) on up to MI_PER_CLASS training examples of each class in `pair`."""
    x_train, y_train = dm.splits["train"]
    pick = torch.Generator().manual_seed(SEED_MI_EXAMPLES)
    chosen = []
    for c in pair:
        members = torch.nonzero(y_train.cpu() == c).flatten()
        if members.numel() == 0:
            raise ValueError(f"classes: class {c} has no training examples")
        chosen.append(members[torch.randperm(members.numel(), generator=pick)[:MI_PER_CLASS]])
    x = x_train[torch.cat(chosen).to(x_train.device)].to(device)
    diffs = metrics.logit_difference_views(
        net, x, (pair[0], pair[1]), _view_sampler(dm), n_views=views,
        generator=torch.Generator().manual_seed(SEED_MI_VIEWS), batch_size=dm.eval_batch_size,
    )
    mi = metrics.mutual_information(diffs).item()
    return {
        "mutual_information": mi,
        "mi_examples": float(x.shape[0]),
        "mi_views": float(views),
        "mi_input_noise_std": 0.0 if dm.augment else MI_INPUT_NOISE_STD,
    }


def _view_sampler(dm: ArrayDataModule) -> Callable[..., Tensor]:
    """augment(x_raw, generator) for `logit_difference_views`: one random view of each example.

    With augmentation each example gets its own view id drawn from the training views (the
    data module renders one view id per call, so examples are grouped by id). Without it, the
    normalised inputs get Gaussian noise (MI_INPUT_NOISE_STD). Draws come from a CPU generator,
    so the views are the same on CPU and GPU.
    """

    def augment(x_raw: Tensor, generator: torch.Generator) -> Tensor:
        if not dm.augment:
            noise = torch.randn(x_raw.shape, generator=generator).to(x_raw.device)
            return dm.normalize(x_raw) + MI_INPUT_NOISE_STD * noise
        ids = torch.randint(dm.num_views, (x_raw.shape[0],), generator=generator).to(x_raw.device)
        out = torch.empty(x_raw.shape, dtype=torch.float32, device=x_raw.device)
        for view in ids.unique().tolist():
            rows = ids == view
            out[rows] = dm.view_inputs(x_raw[rows], view)
        return out

    return augment


def template_positions(weight: Tensor, bias: Tensor | None, classes: Sequence[int]) -> Tensor:
    """The three class templates [w_c | b_c] in the projection plane's coordinates (3, 2): the
    first at the origin; the distances between them are their true distances."""
    origin, basis = metrics.muller_basis(weight, bias, classes)
    w = weight.to(torch.float64)
    b = torch.zeros(w.shape[0], dtype=torch.float64, device=w.device) if bias is None else bias.to(torch.float64)
    templates = torch.cat([w, b[:, None]], dim=1)[list(classes)]
    return (templates - origin) @ basis.T


def template_scale(templates: Tensor) -> float:
    """Mean distance between the three templates: the unit that makes projections comparable."""
    return float(torch.pdist(templates.to(torch.float64)).mean())


def _plot_projection(
    net: nn.Module, outputs: SplitOutputs, classes: Sequence[int], class_names: Sequence[str], out: AnalysisLayout,
    caption: str,
) -> None:
    """Müller's projection, saved as points (muller_projection.pt) and drawn in units of the mean
    distance between the three templates, so tightness reads the same across networks whose
    weights have different norms."""
    head = net.get_classifier()
    weight, bias = head.weight.detach().cpu(), None if head.bias is None else head.bias.detach().cpu()
    points, labels = metrics.muller_projection(
        outputs.features.cpu(), outputs.labels.cpu(), weight, bias,
        classes, per_class=PROJECTION_PER_CLASS, generator=torch.Generator().manual_seed(SEED_PROJECTION),
    )
    templates = template_positions(weight, bias, classes)
    names = {c: class_names[c] for c in classes}
    atomic_save_tensor(out.projection_points, {"points": points.to(torch.float64), "labels": labels,
                                               "templates": templates, "classes": list(classes),
                                               "class_names": [names[c] for c in classes]})
    scale = template_scale(templates)
    figure = plot_muller_projection(
        points.to(torch.float64) / scale, labels, names, templates=templates / scale,
        title=f"Penultimate features on the plane of 3 class templates, {caption}",
    )
    axes = figure.axes[0]
    # The plot's axes are the Gram-Schmidt basis: e1 along t2 - t1, e2 the rest of t3 - t1.
    a, b, c = (names[k] for k in classes)
    axes.set_xlabel(f"along template {b} − template {a}")
    axes.set_ylabel(f"toward template {c} (orthogonal part)")
    axes.get_legend().set_title("class")
    save_figure(figure, out.projection)
