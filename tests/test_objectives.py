"""Objectives against values computed by hand on a fixed linear model."""

import math

import pytest
import torch

from advland.objectives import create_objective
from advland.threat import ThreatModel

X = torch.tensor([[0.2, 0.4, 0.6, 0.8], [0.9, 0.1, 0.3, 0.5]])
X_ADV = torch.tensor([[0.3, 0.3, 0.7, 0.7], [0.8, 0.2, 0.4, 0.4]])
Y = torch.tensor([0, 2])


def _softmax(row):
    exps = [math.exp(v) for v in row]
    return [e / sum(exps) for e in exps]


def _logits(model, x):
    return model(x).tolist()


def _kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def test_at_is_cross_entropy_on_adversarial_inputs(tiny_linear):
    out = create_objective("at").loss(tiny_linear, X, X_ADV, Y)
    probs = [_softmax(r) for r in _logits(tiny_linear, X_ADV)]
    expected = -(math.log(probs[0][0]) + math.log(probs[1][2])) / 2
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)


def test_trades_by_hand(tiny_linear):
    out = create_objective("trades", beta=6.0).loss(tiny_linear, X, X_ADV, Y)
    clean = [_softmax(r) for r in _logits(tiny_linear, X)]
    adv = [_softmax(r) for r in _logits(tiny_linear, X_ADV)]
    ce = -(math.log(clean[0][0]) + math.log(clean[1][2])) / 2
    kl = (_kl(clean[0], adv[0]) + _kl(clean[1], adv[1])) / 2
    assert out.loss.item() == pytest.approx(ce + 6.0 * kl, rel=1e-5)


def test_mart_by_hand(tiny_linear):
    out = create_objective("mart", lam=6.0).loss(tiny_linear, X, X_ADV, Y)
    clean = [_softmax(r) for r in _logits(tiny_linear, X)]
    adv = [_softmax(r) for r in _logits(tiny_linear, X_ADV)]
    total = 0.0
    for i, label in enumerate(Y.tolist()):
        top_wrong = max(p for k, p in enumerate(adv[i]) if k != label)
        bce = -math.log(adv[i][label]) - math.log(1 - top_wrong)
        total += bce + 6.0 * _kl(clean[i], adv[i]) * (1 - clean[i][label])
    assert out.loss.item() == pytest.approx(total / 2, rel=1e-5)


def test_clean_objective_is_the_eps_zero_path(tiny_linear):
    objective = create_objective("clean")
    assert objective.perturb(tiny_linear, X, Y, ThreatModel(eps=0.3), "eval") is X
    at = create_objective("at")
    x_adv = at.perturb(tiny_linear, X, Y, ThreatModel(eps=0.0), "eval")
    assert torch.equal(x_adv, X)
    assert objective.loss(tiny_linear, X, X, Y).loss.item() == pytest.approx(at.loss(tiny_linear, X, X, Y).loss.item())


def test_trades_attack_starts_near_x_and_maximizes_kl(tiny_linear):
    torch.manual_seed(0)
    trades = create_objective("trades")
    x_adv = trades.perturb(tiny_linear, X, Y, ThreatModel(eps=0.1, step_size=0.02, steps=10), "eval")
    assert (x_adv - X).abs().max() <= 0.1 + 1e-6
    out = trades.loss(tiny_linear, X, x_adv, Y)
    assert out.loss.item() > trades.loss(tiny_linear, X, X, Y).loss.item()


def test_unknown_objective():
    with pytest.raises(ValueError, match="clean, at, trades, mart"):
        create_objective("fgsm")


def test_mart_start_is_an_option_uniform_by_default_gaussian_as_the_official_code(tiny_linear):
    """A negligible ascent step leaves the attack at its start: uniform in the ball, or x + 0.001·N(0, I)."""
    x = torch.full((64, 4), 0.5)
    y = torch.zeros(64, dtype=torch.long)
    threat = ThreatModel(eps=0.1, step_size=1e-7, steps=1)
    torch.manual_seed(0)
    uniform = create_objective("mart").perturb(tiny_linear, x, y, threat, "eval") - x
    gaussian = create_objective("mart", start="gaussian").perturb(tiny_linear, x, y, threat, "eval") - x
    assert uniform.abs().max() > 0.09 and uniform.abs().max() <= 0.1 + 1e-6
    assert 0 < gaussian.abs().max() < 0.006 and gaussian.std().item() == pytest.approx(0.001, rel=0.2)


def test_objective_start_from_the_config():
    from advland.build import build_objective
    from advland.config import load_config

    assert build_objective(load_config(None, ["objective=mart"])).start == "uniform"
    assert build_objective(load_config(None, ["objective=mart", "objective.start=gaussian"])).start == "gaussian"
    assert build_objective(load_config(None, ["objective=trades"])).start == "gaussian"


# ---------------------------------------------------------------- label smoothing

def _smoothed_ce(probs, label, s):
    """(1 - s)·(-log p_y) + s·mean_k(-log p_k): cross-entropy against (1 - s)·onehot + s/K, by hand."""
    k = len(probs)
    return (1 - s) * -math.log(probs[label]) + s * sum(-math.log(p) for p in probs) / k


def test_at_label_smoothing_is_torch_cross_entropy_with_label_smoothing(tiny_linear):
    out = create_objective("at", label_smoothing=0.2).loss(tiny_linear, X, X_ADV, Y)
    expected = torch.nn.functional.cross_entropy(tiny_linear(X_ADV), Y, label_smoothing=0.2)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    adv = [_softmax(r) for r in _logits(tiny_linear, X_ADV)]
    by_hand = sum(_smoothed_ce(adv[i], label, 0.2) for i, label in enumerate(Y.tolist())) / 2
    assert out.loss.item() == pytest.approx(by_hand, rel=1e-5)
    assert out.loss.item() != pytest.approx(create_objective("at").loss(tiny_linear, X, X_ADV, Y).loss.item())


def test_trades_label_smoothing_smooths_the_clean_ce_only(tiny_linear):
    out = create_objective("trades", beta=6.0, label_smoothing=0.1).loss(tiny_linear, X, X_ADV, Y)
    clean = [_softmax(r) for r in _logits(tiny_linear, X)]
    adv = [_softmax(r) for r in _logits(tiny_linear, X_ADV)]
    ce = torch.nn.functional.cross_entropy(tiny_linear(X), Y, label_smoothing=0.1).item()
    kl = (_kl(clean[0], adv[0]) + _kl(clean[1], adv[1])) / 2
    assert out.loss.item() == pytest.approx(ce + 6.0 * kl, rel=1e-5)


def test_mart_label_smoothing_smooths_the_ce_part_of_its_bce(tiny_linear):
    out = create_objective("mart", lam=6.0, label_smoothing=0.1).loss(tiny_linear, X, X_ADV, Y)
    clean = [_softmax(r) for r in _logits(tiny_linear, X)]
    adv = [_softmax(r) for r in _logits(tiny_linear, X_ADV)]
    total = 0.0
    for i, label in enumerate(Y.tolist()):
        top_wrong = max(p for k, p in enumerate(adv[i]) if k != label)
        bce = _smoothed_ce(adv[i], label, 0.1) - math.log(1 - top_wrong)
        total += bce + 6.0 * _kl(clean[i], adv[i]) * (1 - clean[i][label])
    assert out.loss.item() == pytest.approx(total / 2, rel=1e-5)


def test_the_attack_maximizes_the_unsmoothed_ce_unless_smooth_attack():
    """Same seed, same start: the default smoothed objective crafts exactly AT's inputs; smooth_attack crafts
    those of PGD on the smoothed CE (which differ: a smoothed target rewards pushing towards uniform)."""
    from advland.attacks import pgd

    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    x, y = torch.rand(32, 4), torch.randint(0, 3, (32,))
    threat = ThreatModel(eps=0.3, step_size=0.05, steps=8)

    def craft(objective=None, **pgd_kwargs):
        torch.manual_seed(0)
        if objective is not None:
            return objective.perturb(model, x, y, threat, "eval")
        return pgd(model, x, y, threat, **pgd_kwargs)

    for name in ("at", "mart"):
        assert torch.equal(craft(create_objective(name, label_smoothing=0.5)), craft(create_objective(name)))
        smoothed = craft(create_objective(name, label_smoothing=0.5, smooth_attack=True))
        assert torch.equal(smoothed, craft(label_smoothing=0.5))
        assert not torch.equal(smoothed, craft(create_objective(name)))


def test_label_smoothing_from_the_config_and_its_errors():
    from advland.build import build_objective
    from advland.config import ConfigError, load_config

    built = build_objective(load_config(None, ["objective=mart", "objective.label_smoothing=0.1",
                                               "objective.smooth_attack=true"]))
    assert (built.label_smoothing, built.smooth_attack) == (0.1, True)
    assert build_objective(load_config(None, ["objective=trades", "objective.label_smoothing=0.2"])).label_smoothing == 0.2
    with pytest.raises(ConfigError, match="smooth_attack applies to the CE attacks of at and mart"):
        load_config(None, ["objective=trades", "objective.smooth_attack=true"])
    with pytest.raises(ConfigError, match="objective.label_smoothing"):
        load_config(None, ["objective.label_smoothing=1.0"])
