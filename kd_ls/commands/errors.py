"""How the `kd-ls` commands report bad input: one line naming the field, exit code 2.

Nothing heavy is imported here: jsonargparse's and Lightning's error classes are looked up only
when an error is being sorted, and only if their modules were loaded (an error cannot be of a
class whose module never loaded), so `kd-ls --help` stays fast."""

from __future__ import annotations

import argparse
import re
import sys

from kd_ls.names import did_you_mean


class ArgumentParser(argparse.ArgumentParser):
    """argparse for kd-ls's own commands: a usage error is a ValueError, printed as one line,
    with "did you mean --X?" for a mistyped option and "did you mean X?" for a mistyped choice."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Raise instead of printing usage and exiting."""
        raise ValueError(f"{message}{self.suggestion(message)} (see `{self.prog} --help`)")

    def suggestion(self, message: str) -> str:
        """'; did you mean X?' for the first unrecognized option or invalid choice in argparse's message."""
        unknown = re.match(r"unrecognized arguments: (\S+)", message)
        if unknown and unknown.group(1).startswith("-"):
            return did_you_mean(unknown.group(1).split("=")[0], self._option_string_actions)
        choice = re.match(r"argument [^:]+: invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if choice:
            return did_you_mean(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)))
        return ""


# (module, class) of the errors that are bad input, not bugs: kd-ls's own (ValueError and its
# kin), jsonargparse's, and Lightning's MisconfigurationException (a Trainer setting this machine
# cannot honour, e.g. `accelerator: gpu` without a GPU, raised before any training).
_USER_ERRORS = (("builtins", "ValueError"), ("builtins", "FileNotFoundError"), ("builtins", "FloatingPointError"),
                ("argparse", "ArgumentError"), ("jsonargparse", "ArgumentError"),
                ("lightning_fabric.utilities.exceptions", "MisconfigurationException"))


def _loaded(module: str, name: str) -> type | None:
    """The class `module.name` if its module is loaded, else None."""
    return getattr(sys.modules.get(module), name, None)


def is_user_error(err: BaseException) -> bool:
    """Whether `err` is bad input (printed as one line, exit 2) rather than a bug (a traceback)."""
    return any(cls is not None and isinstance(err, cls) for cls in (_loaded(*key) for key in _USER_ERRORS))


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
    misconfiguration = _loaded("lightning_fabric.utilities.exceptions", "MisconfigurationException")
    if misconfiguration is not None and isinstance(chain[-1], misconfiguration):
        return f"trainer: {reason}"  # Lightning's words, about the Trainer's settings
    # kd-ls's own errors name their field; jsonargparse's say the key in an outer error.
    own = isinstance(chain[-1], (ValueError, FileNotFoundError, FloatingPointError)) and len(lines) == 1 \
        and not reason.startswith(("Expected", "Option", "module "))
    key = next((m.group(1) for e in chain for m in [re.search(r'Parser key "([^"]+)"', str(e))] if m), None)
    return (reason if own or not key else f"{key}: {reason}") + lightning_suggestion(chain)


def lightning_suggestion(chain: list[BaseException]) -> str:
    """'; did you mean X?' for a mistyped key of `kd-ls fit` (jsonargparse names it but suggests
    nothing): a `--trainer.KEY` that is no Trainer argument, or an option a class_path's class
    does not take."""
    import inspect

    text = "\n".join(str(e) for e in chain)
    trainer_key = re.search(r"unrecognized arguments: --trainer\.(\w+)", text)
    if trainer_key and "pytorch_lightning" in sys.modules:
        from pytorch_lightning import Trainer

        return did_you_mean(trainer_key.group(1), inspect.signature(Trainer.__init__).parameters)
    option = re.search(r"Problem with given class_path '([\w.]+)'.*?Option '(\w+)' is not accepted", text, re.S)
    if option:
        module_name, _, name = option.group(1).rpartition(".")
        cls = getattr(sys.modules.get(module_name), name, None)
        if isinstance(cls, type):
            allowed = {p for klass in cls.__mro__ if "__init__" in vars(klass)
                       for p in inspect.signature(klass.__init__).parameters}
            return did_you_mean(option.group(2), allowed - {"self", "args", "kwargs"})
    return ""
