"""How the `kd-ls` commands report bad input: one line naming the field, exit code 2."""

from __future__ import annotations

import argparse
import re

from jsonargparse import ArgumentError
from lightning_fabric.utilities.exceptions import MisconfigurationException


class ArgumentParser(argparse.ArgumentParser):
    """argparse for kd-ls's own commands: a usage error is a ValueError, printed as one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Raise instead of printing usage and exiting."""
        raise ValueError(f"{message} (see `{self.prog} --help`)")


# Lightning's MisconfigurationException: a Trainer setting this machine cannot honour (`accelerator: gpu`
# without a GPU), raised before any training.
USER_ERRORS = (ValueError, FileNotFoundError, FloatingPointError, argparse.ArgumentError, ArgumentError,
               MisconfigurationException)


_NOISE = ("Does not validate", "Subtypes:", "Errors:", "Given value", "- Expected a <class 'NoneType'>",
          "- Problem with given class_path", "Parser key")


def one_line_error(err: BaseException) -> str:
    """One line saying which field is wrong and why, from a chain of (jsonargparse) errors."""
    chain = [err]
    while chain[-1].__cause__ is not None:
        chain.append(chain[-1].__cause__)
    lines = [line.strip() for line in str(chain[-1]).strip().splitlines() if line.strip()]
    reason = next((line.removeprefix("- ") for line in lines if not line.startswith(_NOISE)), lines[0])
    given = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Given value:")), None)
    if given and "NestedArg" not in given and given not in reason:
        reason += f" (given: {given})"
    if isinstance(chain[-1], MisconfigurationException):
        return f"trainer: {reason}"  # Lightning's words, about the Trainer's settings
    # kd-ls's own errors name their field; jsonargparse's say the key in an outer error.
    own = isinstance(chain[-1], (ValueError, FileNotFoundError, FloatingPointError)) and len(lines) == 1 \
        and not reason.startswith(("Expected", "Option", "module "))
    key = next((m.group(1) for e in chain for m in [re.search(r'Parser key "([^"]+)"', str(e))] if m), None)
    return reason if own or not key else f"{key}: {reason}"
