"""Teacher, student and feature metrics of kd_ls/science.md §4-5, in PyTorch.

Every function accepts tensors on any device (CPU or CUDA) and of any floating dtype, and returns
scalar results as float64 0-dim tensors on the input's device (float64 because the sums behind
them cancel; the heavy pairwise work in `silhouette_score` still runs in the input's precision).
Pairwise work is done in row blocks, so no N x N matrix is ever formed.
"""

from kd_ls.metrics.agreement import agreement, kl_divergence
from kd_ls.metrics.calibration import (
    calibration_errors,
    ece,
    fit_temperature,
    mce,
    nll,
    reliability_diagram,
)
from kd_ls.metrics.clusters import (
    ClassMoments,
    calinski_harabasz_score,
    cdnv,
    class_moments,
    class_separation_r2,
    davies_bouldin_score,
    nc1,
    stability,
    variance_ratio,
)
from kd_ls.metrics.information import logit_difference_views, mutual_information, smoothness_index
from kd_ls.metrics.projection import muller_basis, muller_projection
from kd_ls.metrics.silhouette import silhouette_score

__all__ = [
    "ClassMoments",
    "agreement",
    "calibration_errors",
    "calinski_harabasz_score",
    "cdnv",
    "class_moments",
    "class_separation_r2",
    "davies_bouldin_score",
    "ece",
    "fit_temperature",
    "kl_divergence",
    "logit_difference_views",
    "mce",
    "muller_basis",
    "muller_projection",
    "mutual_information",
    "nc1",
    "nll",
    "reliability_diagram",
    "silhouette_score",
    "smoothness_index",
    "stability",
    "variance_ratio",
]
