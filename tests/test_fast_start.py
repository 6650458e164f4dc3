"""A help page comes back at once: `kd-ls --help`, `kd-ls study --help` and a usage error load
neither torch nor Lightning (each command imports what it needs when it runs). What is checked
is what gets imported, in a fresh interpreter; no timing is asserted."""

import subprocess
import sys

import pytest

HEAVY = ("torch", "pytorch_lightning", "lightning_fabric", "jsonargparse", "matplotlib", "wandb")


@pytest.mark.parametrize("argv", [["--help"], ["study", "--help"], ["report", "--help"], ["study", "--jbos", "2"]])
def test_help_and_usage_errors_import_nothing_heavy(argv):
    script = ("import sys\nfrom kd_ls.commands.main import main\ntry:\n    main(sys.argv[1:])\n"
              "except SystemExit:\n    pass\n"
              f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=120)
    assert "LOADED []" in done.stdout, (done.stdout[-500:], done.stderr[-500:])
    assert "kd-ls" in done.stdout + done.stderr  # it answered
