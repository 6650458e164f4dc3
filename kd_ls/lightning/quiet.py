"""Keep a kd-ls run's console to what a user should act on.

Lightning, torch and W&B print messages that say nothing about a kd-ls run a user could act
on; each is silenced here, at its source, with the reason. Everything else (a real warning,
an error) still shows. `kd-ls fit --verbose`, `kd-ls study --verbose` or `KD_LS_VERBOSE=1`
keep every message. Written for pytorch-lightning 2.6, torch 2.x and wandb 0.31; tests
(tests/test_quiet.py) run a default fit and a study and check that none of these appear.
"""

from __future__ import annotations

import logging
import os
import warnings

VERBOSE_ENV = "KD_LS_VERBOSE"

# Lightning's rank_zero_info messages (they are logged through this logger) that are ads or
# internal bookkeeping, not facts about the run.
_LIGHTNING_INFO = (
    "💡 Tip:",  # litlogger / litmodels adverts, printed by every Trainer
    "Loading `train_dataloader` to estimate number of stepping batches.",  # kd-ls's schedules ask for it, by design
    "Trainer already configured with model summary callbacks",  # kd-ls's own summary (progress.RunSummary)
)
# Lightning and Fabric each point lightning_utilities' rank-zero logging at a logger of their own.
_RANK_ZERO_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero")


class _DropMessages(logging.Filter):
    """A logging filter that drops records whose message starts with one of `prefixes`."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        """False (drop) for a record starting with one of the prefixes."""
        return not str(record.getMessage()).startswith(self.prefixes)


def verbose() -> bool:
    """Whether the user asked for every message (--verbose, or KD_LS_VERBOSE=1)."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0", "false")


def set_verbose(on: bool) -> None:
    """Ask for every message in this process and the workers it starts (they inherit the environment)."""
    if on:
        os.environ[VERBOSE_ENV] = "1"


def quiet() -> None:
    """Silence the known non-actionable messages, unless verbose() (idempotent: safe to call per run)."""
    if verbose():
        return
    for name in _RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(_LIGHTNING_INFO))
    # Lightning 2.6's own pytree helper builds torch's deprecated LeafSpec; only a Lightning
    # release can change that.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning)
    # A Student keeps its frozen teacher in eval mode on purpose (BatchNorm statistics and
    # dropout of a finished teacher must not change); Lightning warns about any module in
    # eval mode when training starts.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")
    # W&B prints a dozen `wandb:` lines per run (banner, sync hints, run summary); a study's
    # progress lines and kd-ls's own warnings already say where each run is and how to upload
    # it. WANDB_SILENT is W&B's own switch; a value the user set wins.
    os.environ.setdefault("WANDB_SILENT", "true")
