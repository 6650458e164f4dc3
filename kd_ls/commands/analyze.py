"""`kd-ls analyze CKPT`: every metric and plot of one checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from kd_ls.commands.errors import ArgumentParser
from kd_ls.io import read_yaml_text


def analyze_command(argv: Sequence[str]) -> None:
    """kd-ls analyze CKPT [--data FILE] [--split {val,test}] [--out DIR] [--classes A,B,C] [--views L]
    [--device cpu|cuda|auto]: write metrics.json, plots and features.pt of a checkpoint.

    Raises FileNotFoundError / ValueError (printed by the CLI as one `kd-ls: error:` line) for a
    missing checkpoint or data config, a data config that names no usable data module, or bad
    --classes / --views / --device values.
    """
    parser = ArgumentParser(prog="kd-ls analyze", description="Metrics and plots of a kd-ls checkpoint.")
    parser.add_argument("ckpt", metavar="CKPT", help="checkpoint file, usually RUN/checkpoints/last.ckpt")
    parser.add_argument("--data", metavar="FILE",
                        help="YAML with a data: section (class_path/init_args) or those keys at top level; "
                             "default: RUN/config.yaml of the run folder holding CKPT")
    parser.add_argument("--split", choices=("val", "test"), default="test", help="split to evaluate (default: test)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: RUN/analysis/<split>/)")
    parser.add_argument("--classes", default="0,1,2", metavar="A,B,C",
                        help="three classes (indices or names) for the Müller projection; the first two "
                             "also define the logit difference of the mutual information (default: 0,1,2)")
    parser.add_argument("--views", type=int, default=5, metavar="L",
                        help="augmented views per example for the mutual information (default: 5)")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                        help="where the network and metrics run (auto: cuda when available)")
    args = parser.parse_args(argv)
    from kd_ls.analysis import analyze_checkpoint, parse_classes
    from kd_ls.data import datamodule_from_config
    from kd_ls.layout import RunLayout

    ckpt = Path(args.ckpt)
    if not ckpt.is_file():
        raise FileNotFoundError(f"CKPT: no checkpoint at '{ckpt}'")
    run = RunLayout.of_checkpoint(ckpt)
    if args.data is not None:
        data_file = Path(args.data)
        if not data_file.is_file():
            raise FileNotFoundError(f"--data: no file at '{data_file}'")
    else:
        data_file = run.config
        if not data_file.is_file():
            raise FileNotFoundError(
                f"--data: no run config at '{data_file}' (CKPT is not in a RUN/checkpoints/ folder); "
                "pass --data FILE with the data section"
            )
    read_yaml_text(data_file, "--data")
    datamodule = datamodule_from_config(data_file)
    out_dir = Path(args.out) if args.out else run.analysis(args.split)
    values = analyze_checkpoint(
        str(ckpt), datamodule, out_dir, split=args.split,
        classes=parse_classes(args.classes, datamodule.class_names), views=args.views,
        device=None if args.device == "auto" else args.device,
    )
    shown = ("acc", "nll", "ece", "ece_ts", "ts_temperature", "r2", "nc1", "mutual_information", "agreement")
    print("  ".join(f"{k}={values[k]:.4g}" for k in shown if k in values))
    print(f"Analysis of {ckpt} ({args.split} split) in {out_dir}: "
          "metrics.json, muller_projection.png, reliability_diagram.png, features.pt")
