"""GPU paths: every command and suite given CPU tensors and a CUDA model (skipped without CUDA;
benchmarks/gpu_check.sh runs them on a GPU machine)."""

import pytest
import torch

from advland import landscape as L
from advland.attacks import pgd
from advland.build import build_data, resident_training_data
from advland.config import load_config
from advland.evaluate import evaluate
from advland.reproduce.common import make_suite
from advland.reproduce.kanai2021 import matched_l2_eps
from advland.load import load
from advland.threat import ThreatModel
from advland.train import Trainer

from test_train import _config

pytestmark = pytest.mark.cuda
CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def cuda_run(tmp_path_factory):
    """A 2-epoch digits AT run trained on the GPU at bf16 (returns the run directory)."""
    out = tmp_path_factory.mktemp("cuda")
    Trainer(_config(out, "name=gpu", "device=cuda", "precision=bf16", "epochs=2"), progress=False).fit()
    return out / "gpu"


def _digits(n=128):
    data = build_data(load_config("digits/at"))
    return data.x_test[:n], data.y_test[:n]


def test_pgd_takes_host_inputs_for_a_cuda_model_and_returns_them_on_the_host(cuda_run):
    model = load(cuda_run, "best", device="cuda")
    x, y = _digits()
    x_adv = pgd(model, x, y, ThreatModel(eps=0.2, step_size=0.05, steps=5))
    assert x_adv.device.type == "cpu" and (x_adv - x).abs().max() <= 0.2 + 1e-6


def test_kanai2021_matched_l2_eps_on_cuda(cuda_run, tmp_path):
    suite = make_suite(tmp_path, "tiny", "digits", "cuda", log=lambda _: None)
    x, y = _digits()
    assert matched_l2_eps(suite, load(cuda_run, "last", device="cuda"), x, y) > 0


@pytest.mark.parametrize("extra", [["precision=fp32"], ["precision=fp16"], ["precision=bf16", "compile=true"],
                                   ["objective.name=trades", "data.augment=crop_flip"], ["perturb=awp"]])
def test_training_runs_on_cuda(tmp_path, extra):
    trainer = Trainer(_config(tmp_path, "name=t", "device=cuda", "epochs=1", *extra), progress=False)
    assert trainer.data.x_train.device.type == "cuda"  # data.on_device=auto keeps the digits on the GPU
    summary = trainer.fit()
    assert 0 <= summary["test_robust_acc"] <= summary["test_clean_acc"] <= 1


def test_resident_data_stays_on_the_host_when_asked():
    data = build_data(load_config("digits/at"))
    assert resident_training_data(data, False, CUDA).x_train.device.type == "cpu"
    assert resident_training_data(data, True, CUDA).x_train.device.type == "cuda"


def test_evaluation_and_landscapes_on_cuda(cuda_run):
    model = load(cuda_run, "best", device="cuda")
    x, y = _digits()
    report = evaluate(model, x, y, norm="linf", eps=0.2, attacks=["pgd", "cw"], steps=5, progress=False)
    assert 0 <= report.accuracy["worst_case"] <= report.accuracy["clean"]
    threat = ThreatModel(eps=0.2, step_size=0.05, steps=3)
    surface = L.surface(model, x, y, steps=3, metrics=["clean_loss", "adv_loss"], threat=threat)
    assert surface.values["adv_loss"].shape == (3, 3)
    top = L.lanczos(L.hessian(model, x, y, threat=threat), k=2, max_steps=10).values
    assert top[0] >= top[1]
    assert L.gradient_norm(model, x, y, threat) > 0


def test_landscape_stacks_points_on_cuda_and_agrees_with_one_at_a_time(cuda_run):
    model = load(cuda_run, "best", device="cuda")
    x, y = _digits(64)
    threat = ThreatModel(eps=0.2, step_size=0.05, steps=3)
    kwargs = dict(steps=5, metrics=["clean_loss", "adv_acc"], threat=threat, layout="contiguous")
    auto = L.surface(model, x, y, **kwargs)  # stack measured to fit the free memory
    one = L.surface(model, x, y, stack=1, **kwargs)
    assert auto.info["stack"] > 1
    for metric in kwargs["metrics"]:
        assert abs(auto.values[metric] - one.values[metric]).max() < 1e-4
