"""kd-ls: do label-smoothed teachers make worse students? Train, distil, measure, decide."""

__version__ = "0.1.0"
