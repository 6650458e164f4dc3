"""The distillation losses by name (kd, lskd, dkd) against hand-computed values, independent
references written here, the authors' own formulas ported literally, and the identities of
kd_ls/science.md §3.1; their options refused with one-line errors."""

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_lightning import Callback, Trainer

from kd_ls.data import MNIST1D
from kd_ls.lightning import Student
from kd_ls.losses import LOSSES, distillation_loss

TEMPERATURES = (0.1, 1.0, 4.0, 100.0)


def batch(n: int = 64, k: int = 10, scale: float = 3.0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, k, generator=g) * scale, torch.randn(n, k, generator=g) * scale,
            torch.randint(0, k, (n,), generator=g))


# ---- references ---------------------------------------------------------------------------------

def old_distillation_loss(student_logits, teacher_logits, labels, temperature=4.0, beta=0.9, soften_student=True,
                          ignore_index=-100):
    """kd-ls's distillation loss before the loss registry, verbatim: loss="kd" must equal it."""
    student_temperature = temperature if soften_student else 1.0
    teacher_probs = F.softmax(teacher_logits.float() / temperature, dim=-1)
    student_log_probs = F.log_softmax(student_logits.float() / student_temperature, dim=-1)
    kl = F.kl_div(student_log_probs, teacher_probs, reduction="batchmean")
    soft = kl * (temperature**2 if soften_student else 1.0)
    if beta == 1.0:
        return soft
    hard = F.cross_entropy(student_logits.float(), labels, ignore_index=ignore_index)
    return (1 - beta) * hard + beta * soft


def mdistiller_dkd_loss(logits_student, logits_teacher, target, alpha, beta, temperature):
    """mdistiller's dkd_loss (megvii-research/mdistiller, mdistiller/distillers/DKD.py) ported
    literally, its masking helpers inlined; only the deprecated size_average=False is spelled
    reduction="sum"."""
    gt_mask = torch.zeros_like(logits_student).scatter_(1, target.reshape(-1).unsqueeze(1), 1).bool()
    other_mask = torch.ones_like(logits_student).scatter_(1, target.reshape(-1).unsqueeze(1), 0).bool()

    def cat_mask(t, mask1, mask2):
        return torch.cat([(t * mask1).sum(dim=1, keepdims=True), (t * mask2).sum(1, keepdims=True)], dim=1)

    pred_student = cat_mask(F.softmax(logits_student / temperature, dim=1), gt_mask, other_mask)
    pred_teacher = cat_mask(F.softmax(logits_teacher / temperature, dim=1), gt_mask, other_mask)
    log_pred_student = torch.log(pred_student)
    tckd_loss = F.kl_div(log_pred_student, pred_teacher, reduction="sum") * (temperature**2) / target.shape[0]
    pred_teacher_part2 = F.softmax(logits_teacher / temperature - 1000.0 * gt_mask, dim=1)
    log_pred_student_part2 = F.log_softmax(logits_student / temperature - 1000.0 * gt_mask, dim=1)
    nckd_loss = F.kl_div(log_pred_student_part2, pred_teacher_part2, reduction="sum") * (temperature**2) / target.shape[0]
    return alpha * tckd_loss + beta * nckd_loss


def authors_lskd_loss(logits_student, logits_teacher, temperature):
    """Sun et al.'s kd_loss with logit_stand=True (sunshangquan/logit-standardization-KD,
    mdistiller/distillers/KD.py), ported literally."""

    def normalize(logit):
        mean = logit.mean(dim=-1, keepdims=True)
        stdv = logit.std(dim=-1, keepdims=True)
        return (logit - mean) / (1e-7 + stdv)

    log_pred_student = F.log_softmax(normalize(logits_student) / temperature, dim=1)
    pred_teacher = F.softmax(normalize(logits_teacher) / temperature, dim=1)
    return F.kl_div(log_pred_student, pred_teacher, reduction="none").sum(1).mean() * temperature**2


def kl_rows(p, q):
    """Per-row KL(p || q) of probability rows, in float64."""
    p, q = p.double(), q.double()
    return (p * (p.log() - q.log())).sum(-1)


def decoupled_reference(s, t, y, temperature):
    """Per-sample KD, TCKD, NCKD and teacher p_y from probabilities, in float64 (moderate logits)."""
    p, q = F.softmax(t.double() / temperature, -1), F.softmax(s.double() / temperature, -1)
    target = F.one_hot(y, s.shape[1]).bool()
    p_y, q_y = p[target], q[target]
    tckd = kl_rows(torch.stack([p_y, 1 - p_y], -1), torch.stack([q_y, 1 - q_y], -1))
    k = s.shape[1]
    p_rest, q_rest = p[~target].view(-1, k - 1), q[~target].view(-1, k - 1)
    nckd = kl_rows(p_rest / p_rest.sum(-1, keepdim=True), q_rest / q_rest.sum(-1, keepdim=True))
    return kl_rows(p, q), tckd, nckd, p_y


# ---- hand-computed cases ----------------------------------------------------------------------------

def softmax(xs):
    e = [math.exp(x) for x in xs]
    return [v / sum(e) for v in e]


def kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def test_lskd_hand_computed():
    # s = (1, 2, 3): mean 2, unbiased std 1; t = (0, 0, 3): mean 1, unbiased std sqrt(3).
    s, t, y = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[0.0, 0.0, 3.0]]), torch.tensor([2])
    T, eps = 2.0, 1e-7
    zs = [v / (1 + eps) for v in (-1.0, 0.0, 1.0)]
    zt = [v / (math.sqrt(3) + eps) for v in (-1.0, -1.0, 2.0)]
    soft = T**2 * kl(softmax([v / T for v in zt]), softmax([v / T for v in zs]))
    assert distillation_loss(s, t, y, T, 1.0, loss="lskd").item() == pytest.approx(soft, rel=1e-5)  # float32 KL
    ce = -math.log(softmax([1.0, 2.0, 3.0])[2])  # CE stays on the raw student logits
    assert distillation_loss(s, t, y, T, 0.25, loss="lskd").item() == pytest.approx(0.75 * ce + 0.25 * soft, rel=1e-5)


def test_dkd_hand_computed():
    s, t, y = torch.tensor([[1.0, 0.0, -1.0]]), torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([0])
    T, a, b = 1.0, 1.5, 2.0
    p, q = softmax([2.0, 0.0, 0.0]), softmax([1.0, 0.0, -1.0])
    tckd = kl([p[0], 1 - p[0]], [q[0], 1 - q[0]])
    nckd = kl([0.5, 0.5], softmax([0.0, -1.0]))  # the teacher's two non-targets are tied
    soft = a * tckd + b * nckd
    assert distillation_loss(s, t, y, T, 1.0, loss="dkd", dkd_alpha=a, dkd_beta=b).item() == pytest.approx(soft, rel=1e-6)
    # defaults 1 and 8, the T^2 factor at T = 2, and the mixing with CE
    p2, q2 = softmax([1.0, 0.0, 0.0]), softmax([0.5, 0.0, -0.5])
    soft2 = 4 * (kl([p2[0], 1 - p2[0]], [q2[0], 1 - q2[0]]) + 8 * kl([0.5, 0.5], softmax([0.0, -0.5])))
    ce = -math.log(q[0])
    assert distillation_loss(s, t, y, 2.0, 0.5, loss="dkd").item() == pytest.approx(0.5 * ce + 0.5 * soft2, rel=1e-6)


# ---- against the authors' code and independent references -------------------------------------------

@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0, 8.0])
def test_lskd_matches_the_authors_code(temperature):
    s, t, y = batch(scale=5.0)
    ours = distillation_loss(s, t, y, temperature, 1.0, loss="lskd")
    assert torch.allclose(ours, authors_lskd_loss(s, t, temperature), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("temperature, alpha, beta", [(1.0, 1.0, 8.0), (4.0, 1.0, 8.0), (2.0, 0.5, 2.0), (8.0, 0.0, 1.0)])
def test_dkd_matches_mdistiller_where_finite(temperature, alpha, beta):
    for seed in range(3):
        s, t, y = batch(scale=4.0, seed=seed)
        reference = mdistiller_dkd_loss(s, t, y, alpha, beta, temperature)
        assert torch.isfinite(reference)
        ours = distillation_loss(s, t, y, temperature, 1.0, loss="dkd", dkd_alpha=alpha, dkd_beta=beta)
        assert torch.allclose(ours, reference, rtol=1e-5, atol=1e-6)


def test_dkd_matches_the_probability_reference_and_mixes_with_ce():
    s, t, y = batch()
    _, tckd, nckd, _ = decoupled_reference(s, t, y, 3.0)
    soft = 9.0 * (2.0 * tckd + 5.0 * nckd).mean()
    ours = distillation_loss(s, t, y, 3.0, 0.3, loss="dkd", dkd_alpha=2.0, dkd_beta=5.0).double()
    assert torch.allclose(ours, 0.7 * F.cross_entropy(s.double(), y) + 0.3 * soft, rtol=1e-5)


def test_kd_is_bit_identical_to_the_loss_before_the_registry():
    s, t, y = batch()
    y_masked = y.clone()
    y_masked[::3] = -100
    settings = [{}, {"temperature": 2.0, "beta": 0.5}, {"temperature": 8.0, "beta": 1.0},
                {"temperature": 4.0, "beta": 0.0}, {"temperature": 3.0, "beta": 0.7, "soften_student": False}]
    for labels in (y, y_masked):
        for kwargs in settings:
            ours_s, old_s = s.clone().requires_grad_(), s.clone().requires_grad_()
            ours = distillation_loss(ours_s, t, labels, loss="kd", **kwargs)
            old = old_distillation_loss(old_s, t, labels, **kwargs)
            assert torch.equal(ours, old) and torch.equal(distillation_loss(s, t, labels, **kwargs), old)
            ours.backward()
            old.backward()
            assert torch.equal(ours_s.grad, old_s.grad)


# ---- identities and invariances ------------------------------------------------------------------

@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_kd_is_tckd_plus_teacher_doubt_times_nckd_per_sample(temperature):
    """Zhao et al. Eq. 1 with kd-ls's own terms, sample by sample: KD = TCKD + (1 - p_y) NCKD."""
    s, t, y = batch(n=16)
    one = {"temperature": temperature, "beta": 1.0}
    for i in range(16):
        row = (s[i : i + 1], t[i : i + 1], y[i : i + 1])
        kd = distillation_loss(*row, **one).double()
        tckd = distillation_loss(*row, loss="dkd", dkd_alpha=1.0, dkd_beta=0.0, **one).double()
        nckd = distillation_loss(*row, loss="dkd", dkd_alpha=0.0, dkd_beta=1.0, **one).double()
        p_y = F.softmax(t[i].double() / temperature, -1)[y[i]]
        assert torch.allclose(kd, tckd + (1 - p_y) * nckd, rtol=1e-5, atol=1e-7)
    # and the probability reference agrees with it, so the identity is not an artefact of one code path
    kd_ref, tckd_ref, nckd_ref, p_y = decoupled_reference(s, t, y, temperature)
    assert torch.allclose(kd_ref, tckd_ref + (1 - p_y) * nckd_ref, atol=1e-10)


def test_lskd_ignores_a_positive_scale_and_a_shift_per_sample():
    s, t, y = batch()
    g = torch.Generator().manual_seed(1)
    scale = lambda: torch.rand(64, 1, generator=g) * 5 + 0.2  # noqa: E731
    shift = lambda: torch.randn(64, 1, generator=g) * 10  # noqa: E731
    for temperature in (1.0, 4.0):
        base = distillation_loss(s, t, y, temperature, 1.0, loss="lskd")
        moved = distillation_loss(s * scale() + shift(), t * scale() + shift(), y, temperature, 1.0, loss="lskd")
        assert torch.allclose(base, moved, rtol=1e-4, atol=1e-6)
        # plain KD does depend on the teacher's scale: the invariance is the loss's, not the data's
        assert not torch.allclose(distillation_loss(s, t, y, temperature, 1.0),
                                  distillation_loss(s, 3 * t, y, temperature, 1.0), rtol=1e-2)


def test_dkd_without_nckd_sees_the_teacher_only_through_its_true_class_probability():
    s, t, y = batch()
    temperature = 2.0
    target = F.one_hot(y, 10).bool()
    # New non-target logits, shifted so that logsumexp(others / T) and hence p_y are unchanged.
    other = torch.randn(64, 10, generator=torch.Generator().manual_seed(3)) * 3
    rest, new_rest = (t / temperature).masked_fill(target, -math.inf), (other / temperature).masked_fill(target, -math.inf)
    shift = torch.logsumexp(rest, -1, keepdim=True) - torch.logsumexp(new_rest, -1, keepdim=True)
    t2 = torch.where(target, t, other + temperature * shift)
    p = lambda logits: F.softmax(logits / temperature, -1)[target]  # noqa: E731
    assert torch.allclose(p(t), p(t2), atol=1e-6) and not torch.allclose(t, t2)
    tckd_only = {"temperature": temperature, "beta": 1.0, "loss": "dkd", "dkd_beta": 0.0}
    assert torch.allclose(distillation_loss(s, t, y, **tckd_only), distillation_loss(s, t2, y, **tckd_only), rtol=1e-5)
    with_nckd = {**tckd_only, "dkd_beta": 8.0}
    assert not torch.allclose(distillation_loss(s, t, y, **with_nckd), distillation_loss(s, t2, y, **with_nckd), rtol=1e-3)


# ---- numerical range ---------------------------------------------------------------------------------

@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_values_and_gradients_stay_finite_at_extreme_logits(loss, temperature):
    g = torch.Generator().manual_seed(0)
    signs = lambda: torch.randint(0, 2, (32, 10), generator=g).float() * 2 - 1  # noqa: E731
    s = (1e4 * signs()).requires_grad_()
    t = 1e4 * signs()
    y = torch.randint(0, 10, (32,), generator=g)
    value = distillation_loss(s, t, y, temperature, 0.5, loss=loss)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(s.grad).all()


def test_mdistillers_literal_dkd_is_not_finite_where_ours_is():
    """The case the stable form exists for: saturated softmaxes at logits of +-1e4."""
    g = torch.Generator().manual_seed(0)
    s = 1e4 * (torch.randint(0, 2, (32, 10), generator=g).float() * 2 - 1)
    t = 1e4 * (torch.randint(0, 2, (32, 10), generator=g).float() * 2 - 1)
    y = torch.randint(0, 10, (32,), generator=g)
    assert not torch.isfinite(mdistiller_dkd_loss(s, t, y, 1.0, 8.0, 4.0))
    assert torch.isfinite(distillation_loss(s, t, y, 4.0, 1.0, loss="dkd"))


def test_dkd_rows_without_a_label_add_nothing():
    s, t, y = batch()
    y_masked = y.clone()
    y_masked[::2] = -100
    ours = distillation_loss(s, t, y_masked, 4.0, 0.6, loss="dkd")
    ref = distillation_loss(s[1::2], t[1::2], y[1::2], 4.0, 0.6, loss="dkd")
    assert torch.allclose(ours, ref, rtol=1e-6)


def test_soft_scale_multiplies_the_soft_term_alone():
    s, t, y = batch()
    for loss in LOSSES:
        soft = distillation_loss(s, t, y, 4.0, 1.0, loss=loss)
        ce = F.cross_entropy(s, y)
        mixed = distillation_loss(s, t, y, 4.0, 0.4, loss=loss, soft_scale=0.25)
        assert torch.allclose(mixed, 0.6 * ce + 0.4 * 0.25 * soft, rtol=1e-6)


# ---- bad names and options -------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"loss": "lsdk"}, "loss must be one of kd, lskd, dkd; got 'lsdk'; did you mean lskd?"),
    ({"loss": "hinton"}, "loss must be one of kd, lskd, dkd; got 'hinton'"),
    ({"loss": "kd", "dkd_beta": 2.0}, "dkd_beta is an option of loss 'dkd', not of loss 'kd'; its options: none"),
    ({"loss": "lskd", "dkd_alpha": 2.0}, "dkd_alpha is an option of loss 'dkd', not of loss 'lskd'; its options: none"),
    ({"loss": "dkd", "dkd_bta": 2.0},
     "dkd_bta is not an option of loss 'dkd'; its options: dkd_alpha, dkd_beta; did you mean dkd_beta?"),
    ({"loss": "dkd", "dkd_beta": -1.0}, "dkd_beta must be a finite number >= 0, got -1.0"),
    ({"loss": "dkd", "dkd_alpha": math.nan}, "dkd_alpha must be a finite number >= 0, got nan"),
    ({"loss": "dkd", "soften_student": False},
     "soften_student=False (only the teacher softened) is defined for loss 'kd' only; loss 'dkd' softens both by T"),
    ({"loss": "lskd", "soften_student": False},
     "soften_student=False (only the teacher softened) is defined for loss 'kd' only; loss 'lskd' softens both by T"),
])
def test_bad_loss_names_and_options_are_one_line_errors(kwargs, message):
    s, t, y = batch(n=4)
    with pytest.raises(ValueError) as err:
        distillation_loss(s, t, y, **kwargs)
    assert str(err.value) == message


@pytest.mark.parametrize("kwargs, message", [
    ({"loss": "dkdd"}, "model.loss must be one of kd, lskd, dkd; got 'dkdd'; did you mean dkd?"),
    ({"dkd_beta": 2.0}, "model.dkd_beta is an option of loss 'dkd', not of loss 'kd'; its options: none"),
    ({"loss": "lskd", "dkd_warmup_epochs": 5},
     "model.dkd_warmup_epochs is an option of loss 'dkd', not of loss 'lskd'; its options: none"),
    ({"loss": "dkd", "dkd_warmup_epochs": -2}, "model.dkd_warmup_epochs must be a finite number >= 0, got -2"),
    ({"loss": "lskd"}, "model.loss='lskd' needs model.teacher_ckpt: without a teacher the student trains on the labels alone"),
])
def test_the_student_refuses_bad_loss_settings_when_built(kwargs, message):
    with pytest.raises(ValueError) as err:
        Student(net="mlp", net_kwargs={"widths": [8]}, input_shape=(1, 40), **kwargs)
    assert str(err.value) == message


# ---- the Student trains with each loss, and DKD's warm-up is a schedule ---------------------------

class Probe(Callback):
    """Records, at each training epoch's start, the warm-up factor and whether the Student's
    objective equals distillation_loss at that factor on a fixed batch."""

    def __init__(self, batch):
        self.batch, self.scales, self.agree = batch, [], []

    def on_train_epoch_start(self, trainer, module):
        s, t, y = self.batch
        self.scales.append(module.soft_scale())
        expected = distillation_loss(s, t, y, 2.0, 0.5, loss="dkd", soft_scale=self.scales[-1], dkd_beta=4.0)
        self.agree.append(torch.equal(module.objective(s, y, t), expected))


def test_students_train_with_every_loss_and_dkd_warms_up(tiny_teacher):
    ckpt = str(tiny_teacher / "checkpoints" / "last.ckpt")
    args = {"net": "mlp", "net_kwargs": {"widths": [32]}, "input_shape": (1, 40), "teacher_ckpt": ckpt,
            "temperature": 2.0, "beta": 0.5, "optimizer": "adamw", "lr": 0.01, "measure_clusters": False}
    options = {"kd": {}, "lskd": {}, "dkd": {"dkd_beta": 4.0, "dkd_warmup_epochs": 2}}
    probe = Probe(batch(n=8))
    for loss in LOSSES:
        torch.manual_seed(0)
        student = Student(loss=loss, **options[loss], **args)
        trainer = Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                          enable_model_summary=False, callbacks=[probe] if loss == "dkd" else [])
        data = MNIST1D(num_samples=600, batch_size=64)
        trainer.test(student, data, verbose=False)
        untrained = float(trainer.callback_metrics["test/acc"])
        trainer.fit(student, data)
        trainer.test(student, data, verbose=False)
        metrics = trainer.callback_metrics
        # 3 short epochs from a weak teacher: about 0.08 -> 0.26 for each loss
        assert math.isfinite(metrics["test/loss"]) and metrics["test/acc"] > untrained + 0.1, loss
    assert probe.scales == [0.5, 1.0, 1.0] and all(probe.agree)


# ---- the command line -------------------------------------------------------------------------------

def test_the_cli_offers_the_losses_and_refuses_bad_ones_in_one_line(capsys, tmp_path):
    from conftest import STUDENT_CONFIG

    from kd_ls.commands.main import main

    with pytest.raises(SystemExit):
        main(["fit", "--model.help", "kd_ls.lightning.Student"])
    help_text = capsys.readouterr().out
    assert all(f"--model.{name}" in help_text for name in ("loss", "dkd_alpha", "dkd_beta", "dkd_warmup_epochs"))
    base = ["fit", "--config", str(STUDENT_CONFIG), "--trainer.default_root_dir", str(tmp_path)]
    for extra, message in [(["--model.loss", "lsdk"], "model.loss must be one of kd, lskd, dkd; got 'lsdk'"),
                           (["--model.init_args.dkd_beta", "2"], "model.dkd_beta is an option of loss 'dkd', not of loss 'kd'")]:
        with pytest.raises(SystemExit) as exit_info:
            main(base + extra)
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert exit_info.value.code == 2 and len(err) == 1 and err[0].startswith("kd-ls: error: " + message), err
