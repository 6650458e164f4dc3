"""W&B end to end, offline (tests/conftest.py keeps W&B from the network): what a study's runs and
its summary run hold, one W&B folder per study, one timeout per study when W&B is unreachable,
and `kd-ls sync` finding the offline runs and failing in one line, never hanging. (What a single
`kd-ls fit`'s W&B run holds is checked in tests/test_quiet.py, on a real subprocess.)"""

import http.server
import threading
import time
import warnings

import pytest

from conftest import TEACHER_CONFIG, fit, results, tiny
from kd_ls.commands.main import main
from kd_ls.layout import StudyLayout
from kd_ls.study import run_study
from kd_ls.study.tracking import offline_runs

UNREACHABLE = "http://127.0.0.1:9"  # nothing listens there


@pytest.fixture
def unreachable_wandb(monkeypatch, request):
    """Online W&B with a (fake) key, pointed at an address where nothing answers."""
    import wandb

    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", UNREACHABLE)
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "5")
    wandb.teardown()  # wandb keeps process-wide settings: drop the offline ones of earlier tests
    request.addfinalizer(wandb.teardown)  # ... and leave none of these to later tests


def test_unreachable_wandb_falls_back_to_offline_and_loses_nothing(tmp_path, unreachable_wandb):
    with pytest.warns(UserWarning, match=r"W&B unavailable .*logging this run offline .*kd-ls sync"):
        metrics = fit(TEACHER_CONFIG, tmp_path, "--trainer.logger", "WandbLogger", "--trainer.logger.project", "p",
                      "--trainer.max_epochs", "1")
    assert "test/acc" in metrics and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert len(list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))) == 1


@pytest.fixture(scope="module")
def offline_study(tmp_path_factory):
    """A tiny offline W&B study: a teacher, its student, a baseline and the summary run."""
    out = tmp_path_factory.mktemp("wandb_study")
    study = tiny(out, logger="wandb", seeds=[0], alphas=[0.0], temperatures=[2.0])
    study.wandb.offline = True
    study.baselines.ls_alpha = 0.0
    run_study(study, jobs=1, progress=False)
    return out


def test_wandb_offline_study_carries_group_job_type_and_artifact_lineage(offline_study):
    rows = results(offline_study)
    assert {r["role"] for r in rows} == {"teacher", "student", "baseline"}
    layout = StudyLayout.of(offline_study)
    logs = [p.read_bytes() for p in layout.wandb.glob("offline-run-*/run-*.wandb")]
    assert len(logs) == 4 and not list(layout.runs.glob("*/wandb"))  # one W&B folder for the whole study
    by_role = {r["role"]: next(log for log in logs if r["run_id"].encode() in log) for r in rows}
    teacher_id = next(r["run_id"] for r in rows if r["role"] == "teacher")
    for role, log in by_role.items():
        assert b"tiny" in log and role.encode() in log  # group and job type
        assert b"model.alpha" in log or b"model.init_args.alpha" in log  # the resolved config
    assert f"ckpt-{teacher_id}:latest".encode() in by_role["student"]  # the student names its teacher's artifact
    assert f"ckpt-{teacher_id}".encode() in by_role["teacher"]  # the teacher logged it
    assert list(layout.wandb_staging.rglob("*"))  # the checkpoint waits for upload inside the study folder
    summary = [log for log in logs if b"summary" in log and b"results" in log]
    assert len(summary) == 1


def test_sync_lists_the_offline_runs_and_fails_in_one_line_without_w_and_b(offline_study, unreachable_wandb,
                                                                          capsys):
    runs = offline_runs(offline_study)
    assert len(runs) == 4 and all(p.parent == StudyLayout.of(offline_study).wandb for p in runs)
    assert main(["sync", str(offline_study), "--list"]) is None
    assert capsys.readouterr().out.split() == list(map(str, runs))
    with pytest.raises(SystemExit) as stop:
        main(["sync", str(offline_study)])
    assert stop.value.code == 1
    failure = capsys.readouterr().err.strip().splitlines()[-1]
    assert failure.startswith(f"kd-ls sync: failed: W&B at {UNREACHABLE} is unreachable")


class Stalling(http.server.BaseHTTPRequestHandler):
    """A W&B server that answers kd-ls's reachability check (a GET) but never answers what
    `wandb sync` asks (its POSTs), as a network that drops a connection midway."""

    posts: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's names
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:  # noqa: N802
        self.posts.append(self.path)
        time.sleep(60)

    def log_message(self, *args) -> None:
        """No access log on stderr."""


def test_sync_gives_up_after_its_timeout(offline_study, unreachable_wandb, monkeypatch, capsys):
    """`wandb sync` reached but never finishing: one line after --timeout, no hang, nothing marked."""
    import wandb

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.server_port}")
    wandb.teardown()
    try:
        with pytest.raises(SystemExit) as stop:
            main(["sync", str(offline_study), "--timeout", "10"])
    finally:
        server.shutdown()
    assert stop.value.code == 1
    failure = capsys.readouterr().err.strip().splitlines()[-1]
    assert failure.startswith("kd-ls sync: failed: `wandb sync` did not finish within 10 s"), failure
    assert Stalling.posts  # wandb sync itself was talking to the server
    assert len(offline_runs(offline_study)) == 4  # nothing marked uploaded: the same command retries all


def test_unreachable_wandb_costs_one_timeout_per_study(tmp_path, unreachable_wandb):
    """The first run waits out W&B's timeout and warns once; the others (and the summary run) go
    offline at once, and nothing is lost."""
    study = tiny(tmp_path, logger="wandb", seeds=[0], alphas=[0.0], temperatures=[2.0])
    study.baselines.ls_alpha = 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_study(study, jobs=1, progress=False)
    rows = results(tmp_path)
    assert len(rows) == 3 and all(r["status"] == "done" for r in rows)
    ours = [str(w.message) for w in caught if "W&B" in str(w.message)]
    assert len(ours) == 1 and f"`kd-ls sync {tmp_path}`" in ours[0] and "remaining runs" in ours[0]
    layout = StudyLayout.of(tmp_path)
    assert len(list(layout.wandb.glob("run-*"))) == 1  # one online attempt: the first run's
    assert len(offline_runs(tmp_path)) == 4  # every run and the summary, offline, waiting for `kd-ls sync`
