"""Device placement of a study's workers (kd_ls/study/devices.py), on the CPU: which worker
gets which GPU, how many workers a study starts, and the environment a spawned worker sees."""

import os

import pytest

from kd_ls.commands.main import main
from kd_ls.study import devices, runner
from kd_ls.study.spec import StudyError, parse_study


@pytest.mark.parametrize("jobs, gpus, expected", [
    (1, 1, [0]),
    (4, 1, [0, 0, 0, 0]),              # several runs on one GPU
    (4, 2, [0, 1, 0, 1]),              # 2 runs per GPU
    (3, 2, [0, 1, 0]),                 # fewer workers than slots: both GPUs used first
    (6, 3, [0, 1, 2, 0, 1, 2]),
    (2, 4, [0, 1]),                    # more GPUs than workers
    (3, 0, [None, None, None]),        # CPU workers
])
def test_workers_fill_gpus_round_robin(jobs, gpus, expected):
    assert devices.worker_devices(jobs, gpus) == expected


@pytest.mark.parametrize("gpus, runs_per_gpu", [(1, 1), (1, 4), (2, 3), (8, 2)])
def test_default_jobs_put_runs_per_gpu_workers_on_every_gpu(gpus, runs_per_gpu):
    jobs = devices.default_jobs(gpus, runs_per_gpu, cpu_jobs=5)
    assert jobs == gpus * runs_per_gpu
    placed = devices.worker_devices(jobs, gpus)
    assert all(placed.count(gpu) == runs_per_gpu for gpu in range(gpus))


def test_without_gpus_the_cpu_job_count_is_the_default():
    assert devices.default_jobs(0, 4, cpu_jobs=2) == 2


def test_runner_default_jobs_follow_the_study(monkeypatch):
    study = parse_study({"cluster": {"runs_per_gpu": 3}})
    monkeypatch.setattr(runner, "_gpu_count", lambda: 2)
    assert runner.default_jobs(study) == 6
    monkeypatch.setattr(runner, "_gpu_count", lambda: 0)
    assert runner.default_jobs(study) == max(1, (os.cpu_count() or 1) // study.threads)


def test_worker_env_indexes_the_parents_visible_gpus():
    assert devices.worker_env(None) == {}
    assert devices.worker_env(1) == {"CUDA_VISIBLE_DEVICES": "1"}
    assert devices.worker_env(1, "2,3") == {"CUDA_VISIBLE_DEVICES": "3"}
    assert devices.worker_env(0, " GPU-abc , GPU-def") == {"CUDA_VISIBLE_DEVICES": "GPU-abc"}


def test_bad_counts_are_one_line_errors(capsys):
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        devices.worker_devices(0, 1)
    with pytest.raises(StudyError, match=r"study.cluster.runs_per_gpu: must be >= 1, got 0"):
        parse_study({"cluster": {"runs_per_gpu": 0}})
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "--runs-per-gpu", "0"])
    assert exit_info.value.code == 2
    assert "--runs-per-gpu must be >= 1, got 0" in capsys.readouterr().err


def visible_after_barrier(barrier) -> str:
    """Runs in a pool worker: wait until every worker holds a task, then report its GPU."""
    barrier.wait(timeout=120)
    return os.environ.get("CUDA_VISIBLE_DEVICES", "")


def test_spawned_workers_each_see_their_own_gpu(monkeypatch):
    """The runner's real process pool, told there are 2 GPUs: its 2 spawned workers (held
    together by a barrier, so each runs one task) see CUDA_VISIBLE_DEVICES 0 and 1."""
    import multiprocessing

    monkeypatch.setattr(runner, "_gpu_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with multiprocessing.get_context("spawn").Manager() as manager:
        barrier = manager.Barrier(2)
        pool = runner.process_pool(2)
        try:
            seen = sorted(pool.map(visible_after_barrier, [barrier, barrier]))
        finally:
            pool.shutdown()
    assert seen == ["0", "1"]
