"""The teacher-logit cache: exactly the soft labels the online teacher gives, per view."""

import torch
import torch.nn.functional as F

from conftest import STUDENT_CONFIG, fit
from kd_ls.data import create_datamodule
from kd_ls.data.augment import num_views, random_crop_flip
from kd_ls.lightning.checkpoint import load_network
from kd_ls.lightning.teacher_cache import compute_logit_cache, teacher_logit_cache
from kd_ls.models import create_model


def save_teacher(path, seed: int, net_name: str = "resnet20") -> None:
    """A kd-ls-style checkpoint (what load_network reads) of a random network for 8x8 digits."""
    torch.manual_seed(seed)
    hp = {"net": net_name, "num_classes": 10, "input_shape": (1, 8, 8), "net_kwargs": None}
    net = create_model(net_name, 10, (1, 8, 8))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"hyper_parameters": hp, "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, path)


def test_cached_soft_labels_match_the_online_teacher_under_augmentation(tmp_path):
    """Random crop + flip batches: the cache looked up by (sample, view) gives the online
    teacher's softened outputs to within 1e-6 (float32), at T = 1 and T = 4."""
    dm = create_datamodule("digits", batch_size=64, augment=True)
    dm.setup()
    assert dm.num_views == num_views(4, flip=True) == 162
    ckpt = tmp_path / "teacher" / "checkpoints" / "last.ckpt"
    save_teacher(ckpt, seed=0)
    teacher = load_network(str(ckpt), 10)
    cache = teacher_logit_cache(teacher, dm, str(ckpt))
    assert cache.shape == (dm.splits["train"][0].shape[0], 162, 10)
    g = torch.Generator().manual_seed(0)
    worst = 0.0
    for x, _, idx, _ in list(dm.train_dataloader())[:6]:
        views_x, views = random_crop_flip(x, 4, generator=g)
        with torch.no_grad():
            online = teacher(dm.normalize(views_x))
        for t in (1.0, 4.0):
            diff = F.softmax(online / t, -1) - F.softmax(cache[idx, views] / t, -1)
            worst = max(worst, diff.abs().max().item())
    assert worst < 1e-6


def test_cache_follows_the_checkpoint_contents(tmp_path):
    """A teacher retrained into the same run folder (same file size) gets a new cache."""
    dm = create_datamodule("digits", batch_size=64)
    dm.setup()
    ckpt = tmp_path / "teacher" / "checkpoints" / "last.ckpt"
    for seed in (0, 1):
        save_teacher(ckpt, seed, "mlp")
        teacher = load_network(str(ckpt), 10)
        assert torch.equal(teacher_logit_cache(teacher, dm, str(ckpt)), compute_logit_cache(teacher, dm))
    assert len(list((tmp_path / "teacher" / "logit_cache").glob("*.pt"))) == 2


def test_cached_and_online_distillation_train_the_same_student(tiny_teacher, tmp_path):
    ckpt = str(tiny_teacher / "checkpoints" / "last.ckpt")
    online = fit(STUDENT_CONFIG, tmp_path / "online", "--model.init_args.teacher_ckpt", ckpt,
                 "--model.init_args.teacher_cache", "false")
    cached = fit(STUDENT_CONFIG, tmp_path / "cached", "--model.init_args.teacher_ckpt", ckpt,
                 "--model.init_args.teacher_cache", "true")
    assert cached == online
