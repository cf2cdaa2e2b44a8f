"""Precision, compilation and memory format (advland.accel) and the sync-free training loop."""

import logging

import pytest
import torch
from torch import nn

from advland.accel import Accel, MixedPrecision, attack_scale, evaluation_model
from advland.attacks import pgd
from advland.config import ConfigError, load_config
from advland.run import Run
from advland.threat import ThreatModel
from advland.train import EpochMeter, Trainer

from test_train import Crash, CrashAtEpoch, _config

CPU = torch.device("cpu")


def _confident_linear() -> nn.Module:
    """Two classes, class 0 ahead by a logit margin of 20: the CE gradient at the logits is about 2e-9,
    below fp16's smallest subnormal (6e-8)."""
    model = nn.Linear(8, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -1.0, 0.5, -0.5, 1.0, -1.0, 0.5, -0.5],
                                         [-1.0, 1.0, -0.5, 0.5, 0.5, 0.5, -1.0, 1.0]]))
        model.bias.copy_(torch.tensor([20.0, 0.0]))
    return model.eval()


def test_fp16_attack_moves_the_same_pixels_as_fp32_where_the_unscaled_gradient_underflows():
    model = _confident_linear()
    x, y = torch.full((3, 8), 0.5), torch.zeros(3, dtype=torch.long)
    threat = ThreatModel(norm="linf", eps=0.1, step_size=0.1, steps=1)
    half = MixedPrecision(model, model, CPU, "fp16", channels_last=False)
    reference = pgd(model, x, y, threat, start="none") - x
    unscaled = pgd(half, x, y, threat, start="none") - x
    scaled = pgd(half, x, y, threat, start="none", scale=attack_scale("fp16")) - x
    assert reference.abs().min() > 0  # fp32 moves every pixel
    assert unscaled.abs().max() == 0  # the case: unscaled fp16 gradients underflow to sign(0)
    assert torch.equal(scaled.sign(), reference.sign())


def test_attack_scale_is_one_where_precision_cannot_underflow():
    assert attack_scale("fp32") == attack_scale("bf16") == 1.0 and attack_scale("fp16") > 1


def test_mixed_precision_returns_fp32_logits_and_evaluation_stays_fp32():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(3))
    model(torch.rand(2, 3, 8, 8))
    forward = Accel(CPU, "bf16").prepare(model)
    assert forward(torch.rand(2, 3, 8, 8)).dtype == torch.float32
    assert model[1].running_mean.dtype == torch.float32  # BatchNorm statistics stay fp32 buffers
    assert evaluation_model(model, CPU, "fp32") is model
    assert isinstance(evaluation_model(model, CPU, "bf16"), MixedPrecision)
    assert set(forward.state_dict()) == {f"model.{k}" for k in model.state_dict()}  # parameters shared
    assert Accel(CPU, channels_last="auto").channels_last is False
    assert Accel(torch.device("cuda"), channels_last="auto").channels_last is True


def test_fp16_cannot_be_combined_with_entropy_sgd():
    with pytest.raises(ConfigError, match="precision=fp16 cannot be combined"):
        load_config(None, ["precision=fp16", "optimizer.name=entropy_sgd"])


def _resume_matches(tmp_path, *extra) -> None:
    """An interrupted and resumed run ends at the same weights and metrics as an uninterrupted one."""
    whole = Trainer(_config(tmp_path, "name=whole", *extra), progress=False)
    whole.fit()
    with pytest.raises(Crash):
        Trainer(_config(tmp_path, "name=cut", *extra), callbacks=[CrashAtEpoch(3)], progress=False).fit()
    resumed = Trainer(_config(tmp_path, "name=cut", "resume=true", *extra), progress=False)
    resumed.fit()
    for (name, a), (_, b) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(Run(tmp_path / "cut").metrics()) == strip(Run(tmp_path / "whole").metrics())


@pytest.mark.slow
def test_bf16_training_resumes_exactly(tmp_path):
    _resume_matches(tmp_path, "precision=bf16", "model.kwargs={batchnorm: true}")


@pytest.mark.slow
def test_fp16_training_resumes_exactly_with_its_gradient_scaler(tmp_path):
    _resume_matches(tmp_path, "precision=fp16")
    state = Run(tmp_path / "cut").load_state()
    assert state["scaler"]["scale"] > 0


@pytest.mark.slow
def test_compiled_training_resumes_exactly(tmp_path):
    _resume_matches(tmp_path, "compile=true")
    summary = Run(tmp_path / "whole").summary()
    assert summary["compile_seconds"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("bn_mode", ["eval", "train"])
def test_warm_up_compiles_every_graph_of_a_training_step(tmp_path, monkeypatch, bn_mode):
    # compilation left to the first step would be counted in the first epoch's seconds
    trainer = Trainer(_config(tmp_path, "name=w", "compile=true", "epochs=1", f"threat.bn_mode={bn_mode}"), progress=False)
    batch = trainer.examples(next(trainer.batches(0)))
    trainer.accel.warm_up(*batch, bn_mode)
    assert trainer.accel.compile_seconds > 0
    monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", True)
    trainer.step(*batch, trainer.threat, EpochMeter(trainer.device))


class _Broken(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        raise RuntimeError("no C++ compiler found\nsecond line")


def test_compile_failure_warns_once_and_trains_uncompiled(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: _Broken(model))
    trainer = Trainer(_config(tmp_path, "name=c", "compile=true", "epochs=1"), progress=False)
    with caplog.at_level(logging.WARNING, logger="advland"):
        summary = trainer.fit()
    lines = [r.getMessage() for r in caplog.records if "compile" in r.getMessage()]
    assert lines == ["advland: torch.compile is unavailable here (no C++ compiler found); training uncompiled"]
    assert summary["compile_seconds"] is None and trainer.forward.runner is trainer.model


def test_compiled_training_drops_the_last_partial_batch(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: model)
    trainer = Trainer(_config(tmp_path, "name=c", "compile=true", "epochs=1", "data.batch_size=100"), progress=False)
    sizes = [len(b) for b in trainer.batches(0)]
    assert set(sizes) == {100} and len(sizes) == len(trainer.data.y_train) // 100
    summary = trainer.fit()
    assert summary["compile_seconds"] >= 0
    plain = Trainer(_config(tmp_path, "name=p", "epochs=1", "data.batch_size=100"), progress=False)
    assert len(list(plain.batches(0))) == len(sizes) + 1


def test_training_epoch_reads_the_device_once(tmp_path, monkeypatch):
    """No per-step device-to-host copy: the epoch's statistics are read in one tolist()."""
    trainer = Trainer(_config(tmp_path, "name=s", "epochs=1", "objective.name=trades", "perturb=awp"),
                      progress=False)
    calls: dict[str, int] = {}
    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            calls[_name] = calls.get(_name, 0) + 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    record = trainer.train_epoch(0)
    assert calls == {"tolist": 1}
    assert 0 <= record["train_clean_acc"] <= 1 and record["perturb_norm"] > 0


def test_training_data_stays_where_it_is_on_cpu():
    from advland.build import DataSplits, resident_training_data

    x, y = torch.rand(4, 1, 8, 8), torch.arange(4)
    data = DataSplits(x, y, x, y, x, y)
    assert resident_training_data(data, "auto", CPU) is data
    assert resident_training_data(data, True, CPU).x_train is x
