"""kd-ls's GPU paths on a real CUDA device: bf16 training through the CLI, channels_last +
torch.compile, the teacher-logit cache on CUDA, metrics on CUDA vs the CPU, a 2-GPU DDP run.

Every test skips where CUDA is unavailable (and the DDP test below two GPUs). The data is
scikit-learn's digits: the GPU machine has neither mnist1d nor network access.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from conftest import ROOT
from kd_ls import metrics as M
from kd_ls.commands.main import main
from kd_ls.data import create_datamodule
from kd_ls.data.augment import random_crop_flip
from kd_ls.lightning.checkpoint import load_network
from kd_ls.lightning.teacher_cache import compute_logit_cache, teacher_logit_cache
from kd_ls.models import create_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU (torch.cuda.is_available() is False)")

DIGITS_TEACHER = ROOT / "configs" / "teacher" / "digits.yaml"
DDP_TRAINER = ROOT / "configs" / "trainer" / "ddp.yaml"
GPU_BF16 = ["--trainer.accelerator", "gpu", "--trainer.devices", "1", "--trainer.precision", "bf16-mixed"]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def fit_digits(config: Path, run_dir: Path, *extra: str) -> dict:
    """`kd-ls fit` of a digits config on one GPU in bf16, in this process; its metrics.json."""
    main(["fit", "--config", str(config), "--trainer.default_root_dir", str(run_dir), "--trainer.max_epochs", "3",
          *GPU_BF16, *QUIET, *extra])
    return json.loads((run_dir / "metrics.json").read_text())


def student_config(tmp_path: Path, teacher_ckpt: Path, cache: bool) -> Path:
    """The digits teacher config turned into a Student of `teacher_ckpt`."""
    config = yaml.safe_load(DIGITS_TEACHER.read_text())
    config["model"]["class_path"] = "kd_ls.lightning.Student"
    config["model"]["init_args"].update(teacher_ckpt=str(teacher_ckpt), teacher_cache=cache, temperature=4.0, beta=0.9)
    path = tmp_path / f"student_cache{cache}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def save_teacher(path: Path, net_name: str = "resnet20") -> None:
    """A kd-ls checkpoint of a randomly initialised network for 8x8 digits."""
    torch.manual_seed(0)
    net = create_model(net_name, 10, (1, 8, 8))
    path.parent.mkdir(parents=True, exist_ok=True)
    hp = {"net": net_name, "num_classes": 10, "input_shape": (1, 8, 8), "net_kwargs": None}
    torch.save({"hyper_parameters": hp, "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, path)


@pytest.fixture
def exact_fp32():
    """TF32 off for CUDA convolutions and matmuls in the test (restored after): kernels of
    different batch sizes then agree to float32 rounding."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_bf16_teacher_and_students_train_on_the_gpu(tmp_path):
    teacher = fit_digits(DIGITS_TEACHER, tmp_path / "teacher")
    assert teacher["test/acc"] > 0.5  # 3 epochs of the digits MLP: far above chance (0.1)
    config = yaml.safe_load((tmp_path / "teacher" / "config.yaml").read_text())
    assert config["trainer"]["precision"] == "bf16-mixed" and config["trainer"]["accelerator"] == "gpu"
    ckpt = tmp_path / "teacher" / "checkpoints" / "last.ckpt"
    for cache in (False, True):
        student = fit_digits(student_config(tmp_path, ckpt, cache), tmp_path / f"student_cache{cache}")
        assert student["test/acc"] > 0.3 and 0.0 <= student["test/agreement"] <= 1.0
    assert list((tmp_path / "teacher" / "logit_cache").glob("*.pt"))


def test_channels_last_and_compile_train_an_image_model(tmp_path):
    """resnet20, NHWC and torch.compile under bf16 through the CLI: it trains, and the
    checkpoint keeps plain state-dict keys (a compiled net loads as a teacher)."""
    metrics = fit_digits(DIGITS_TEACHER, tmp_path, "--model.init_args.net", "resnet20", "--model.init_args.net_kwargs",
                         "null", "--model.init_args.channels_last", "true", "--model.init_args.compile", "true",
                         "--trainer.max_epochs", "2")
    assert metrics["test/acc"] > 0.2
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert state and not any("_orig_mod" in key for key in state)
    net = load_network(tmp_path / "checkpoints" / "last.ckpt", 10).cuda().to(memory_format=torch.channels_last)
    assert next(p for p in net.parameters() if p.ndim == 4).is_contiguous(memory_format=torch.channels_last)


def test_logit_cache_on_cuda_equals_online_soft_labels(tmp_path, exact_fp32):
    """The cache built on the GPU gives the online teacher's soft labels of each sample's
    crop/flip view (fp32: to 1e-5; bf16 autocast, as in a bf16-mixed step: close)."""
    dm = create_datamodule("digits", batch_size=64, augment=True)
    dm.setup()
    ckpt = tmp_path / "teacher" / "checkpoints" / "last.ckpt"
    save_teacher(ckpt)
    teacher = load_network(str(ckpt), 10).cuda()
    cache = teacher_logit_cache(teacher, dm, str(ckpt))
    assert cache.is_cuda and cache.shape == (dm.splits["train"][0].shape[0], dm.num_views, 10)
    assert torch.equal(teacher_logit_cache(teacher, dm, str(ckpt)), cache)  # read back from its file
    g = torch.Generator(device="cuda").manual_seed(0)
    worst = {"fp32": 0.0, "bf16": 0.0}
    for x, _, idx, _ in list(dm.train_dataloader())[:6]:
        views_x, views = random_crop_flip(x.cuda(), dm.augment_pad, generator=g)
        cached = cache[idx.cuda(), views]
        with torch.no_grad():
            online = {"fp32": teacher(dm.normalize(views_x))}
            with torch.autocast("cuda", dtype=torch.bfloat16):
                online["bf16"] = teacher(dm.normalize(views_x)).float()
        for precision, logits in online.items():
            for t in (1.0, 4.0):
                diff = (F.softmax(logits / t, -1) - F.softmax(cached / t, -1)).abs().max().item()
                worst[precision] = max(worst[precision], diff)
    assert worst["fp32"] < 1e-5
    assert worst["bf16"] < 2e-2
    assert torch.allclose(compute_logit_cache(teacher, dm), cache, atol=1e-5)


@pytest.mark.parametrize("name", ["silhouette_score", "class_separation_r2", "nc1", "variance_ratio", "cdnv",
                                  "davies_bouldin_score", "calinski_harabasz_score"])
def test_cluster_metrics_on_cuda_agree_with_the_cpu(name):
    """20,000 x 256 features (several of CUDA's 8,192-row chunks): float32 on the GPU against
    float64 on the CPU to 1e-4, float64 on the GPU to 1e-9."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (20000,), generator=g)
    h = (2.0 * torch.randn(10, 256, generator=g, dtype=torch.float64))[y] + torch.randn(20000, 256, generator=g,
                                                                                        dtype=torch.float64)
    metric = getattr(M, name)
    on_cpu = metric(h, y)
    on_gpu64, on_gpu32 = metric(h.cuda(), y.cuda()), metric(h.float().cuda(), y.cuda())
    assert on_gpu32.is_cuda
    torch.testing.assert_close(on_gpu64.cpu(), on_cpu, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(on_gpu32.cpu().double(), on_cpu, rtol=1e-4, atol=1e-6)


def test_calibration_metrics_on_cuda_agree_with_the_cpu():
    g = torch.Generator().manual_seed(0)
    logits, labels = 3 * torch.randn(5000, 10, generator=g), torch.randint(0, 10, (5000,), generator=g)
    probs = logits.softmax(-1)
    for metric, inputs in ((M.ece, probs), (M.mce, probs), (M.nll, logits)):
        torch.testing.assert_close(metric(inputs.cuda(), labels.cuda()).cpu(), metric(inputs, labels),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs for DDP")
def test_ddp_on_two_gpus_reports_the_single_gpu_test_accuracy(tmp_path):
    """configs/trainer/ddp.yaml (2 GPUs, NCCL; fp32, so no sample's prediction depends on how
    the ranks batch it): metrics reduced across ranks equal evaluating its checkpoint on one GPU."""
    run = tmp_path / "ddp"
    common = [sys.executable, "-m", "kd_ls.commands.main"]
    subprocess.run([*common, "fit", "--config", str(DIGITS_TEACHER), "--trainer", str(DDP_TRAINER),
                    "--trainer.default_root_dir", str(run), "--trainer.max_epochs", "2", *QUIET],
                   check=True, capture_output=True, cwd=ROOT)
    subprocess.run([*common, "test", "--config", str(run / "config.yaml"), "--ckpt_path",
                    str(run / "checkpoints" / "last.ckpt"), "--trainer.strategy", "auto", "--trainer.devices", "1",
                    "--trainer.default_root_dir", str(tmp_path / "single")], check=True, capture_output=True, cwd=ROOT)
    ddp = json.loads((run / "metrics.json").read_text())
    single = json.loads((tmp_path / "single" / "metrics.json").read_text())
    for key in ("test/acc", "test/nll", "test/ece"):
        assert ddp[key] == pytest.approx(single[key], abs=1e-4), key
