"""The PGD engine: input-only gradients, losses, restarts, BN mode, agreement with ART's PGD."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from advland import data
from advland.attacks import bn_mode, cw_margin, kl_to_clean, pgd
from advland.evaluate import correct_under_attack, eval_threat
from advland.threat import ThreatModel


def test_attack_computes_no_parameter_gradients(tiny_linear):
    x = torch.rand(6, 4)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    x_adv = pgd(tiny_linear, x, y, ThreatModel(eps=0.1, step_size=0.03, steps=5))
    assert all(p.grad is None for p in tiny_linear.parameters())
    assert not x_adv.requires_grad
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6


def test_attack_runs_with_frozen_parameters_and_restores_them(tiny_linear):
    seen = []
    tiny_linear.register_forward_hook(lambda m, i, o: seen.append([p.requires_grad for p in m.parameters()]))
    tiny_linear.bias.requires_grad_(False)  # the user's choice survives the attack
    pgd(tiny_linear, torch.rand(6, 4), torch.tensor([0, 1, 2, 0, 1, 2]), ThreatModel(eps=0.1, step_size=0.03, steps=3))
    assert seen and all(flags == [False, False] for flags in seen)
    assert [p.requires_grad for p in tiny_linear.parameters()] == [True, False]


def test_pgd_increases_the_loss(tiny_linear):
    torch.manual_seed(0)
    x = torch.rand(64, 4)
    y = torch.randint(0, 3, (64,))
    x_adv = pgd(tiny_linear, x, y, ThreatModel(eps=0.1, step_size=0.02, steps=10))
    with torch.no_grad():
        assert F.cross_entropy(tiny_linear(x_adv), y) > F.cross_entropy(tiny_linear(x), y)


def test_cw_margin_and_kl_by_hand():
    logits = torch.tensor([[2.0, 1.0, 0.5]])
    assert cw_margin(logits, torch.tensor([0])).item() == pytest.approx(-1.0)
    assert cw_margin(logits, torch.tensor([2])).item() == pytest.approx(1.5)
    p = torch.tensor([[0.5, 0.25, 0.25]])
    q_logits = torch.log(torch.tensor([[0.25, 0.5, 0.25]]))
    expected = 0.5 * np.log(2) + 0.25 * np.log(0.5)
    assert kl_to_clean(q_logits, p.log()).item() == pytest.approx(expected, abs=1e-6)


def test_restarts_never_weaken_the_attack(digits_at_run):
    trainer, _ = digits_at_run
    model = trainer.model.eval()
    x, y = data.load("digits", "test")
    one = ThreatModel(eps=0.2, step_size=0.05, steps=5, restarts=1)
    torch.manual_seed(0)
    single = correct_under_attack(model, x[:200], y[:200], one).float().mean()
    torch.manual_seed(0)
    multi = correct_under_attack(model, x[:200], y[:200], ThreatModel(eps=0.2, step_size=0.05, steps=5, restarts=3))
    assert multi.float().mean() <= single


def test_bn_mode_restores_every_flag():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    model.train()
    model[1].eval()
    with bn_mode(model, "eval"):
        assert not model.training and not model[0].training
    assert model.training and not model[1].training


def test_pgd_agrees_with_art(digits_at_run):
    """Our PGD-20 and ART's PGD-20 give robust accuracies within 2 points on a trained model."""
    from art.attacks.evasion import ProjectedGradientDescentPyTorch
    from art.estimators.classification import PyTorchClassifier

    trainer, _ = digits_at_run
    model = trainer.model.eval()
    x, y = data.load("digits", "test")
    torch.manual_seed(0)
    ours = correct_under_attack(model, x, y, eval_threat("linf", 0.2, steps=20)).float().mean().item()
    classifier = PyTorchClassifier(model, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10,
                                   clip_values=(0.0, 1.0), device_type="cpu")
    attack = ProjectedGradientDescentPyTorch(classifier, norm=np.inf, eps=0.2, eps_step=0.05, max_iter=20,
                                             num_random_init=1, batch_size=512, verbose=False)
    np.random.seed(0)
    x_art = attack.generate(x.numpy(), y.numpy())
    with torch.no_grad():
        theirs = (model(torch.from_numpy(x_art)).argmax(1) == y).float().mean().item()
    assert abs(ours - theirs) <= 0.02, (ours, theirs)
    assert ours < (model(x).argmax(1) == y).float().mean().item()  # the attack does something
