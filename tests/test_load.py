"""One loader for runs and for weights files advland did not write, through the API and every command."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

import advland
from advland import data as datasets
from advland.cli import main
from advland.errors import AdvlandError
from advland.train import Trainer


class OfficialPreActBlock(nn.Module):
    """The block of preactresnet.py in locuslab/robust_overfitting and csdongxian/AWP (same key layout)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class OfficialPreActResNet18(nn.Module):
    """conv1, layer1..layer4 (two blocks each), bn, linear: the official PreActResNet-18 (64 * width channels;
    adaptive pooling so that the digits' 8x8 images fit, which has no parameters)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        planes = [round(c * width) for c in (64, 128, 256, 512)]
        self.in_planes = planes[0]
        self.conv1 = nn.Conv2d(in_channels, planes[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.layer1 = self._make_layer(planes[0], 1)
        self.layer2 = self._make_layer(planes[1], 2)
        self.layer3 = self._make_layer(planes[2], 2)
        self.layer4 = self._make_layer(planes[3], 2)
        self.bn = nn.BatchNorm2d(planes[3])
        self.linear = nn.Linear(planes[3], num_classes)

    def _make_layer(self, planes: int, stride: int) -> nn.Sequential:
        layers = []
        for s in (stride, 1):
            layers.append(OfficialPreActBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        out = F.relu(self.bn(out))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def _randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give BatchNorm non-trivial statistics and affine parameters, so that a wrong mapping shows."""
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)


def test_official_preactresnet18_checkpoint_loads_into_advland(tmp_path):
    official = _randomized(OfficialPreActResNet18())
    state = {f"module.{k}": v for k, v in official.state_dict().items()}  # saved from DataParallel, as the AWP code
    path = tmp_path / "awp_preactresnet18.pth"
    torch.save({"state_dict": state, "epoch": 200}, path)
    normalize = ",".join(str(v) for v in (*CIFAR_MEAN, *CIFAR_STD))
    model = advland.load_model(path, model="preact_resnet18", data="cifar10", normalize=normalize)
    assert not model.training and isinstance(model[0], advland.models.Normalize)
    x = torch.rand(4, 3, 32, 32)
    expected = official((x - torch.tensor(CIFAR_MEAN).view(3, 1, 1)) / torch.tensor(CIFAR_STD).view(3, 1, 1))
    torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)


def test_loading_never_executes_pickled_code(tmp_path):
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Payload()}, path)
    with pytest.raises(AdvlandError) as info:
        advland.load_model(path, model="mlp", data="digits")
    assert not marker.exists() and "\n" not in str(info.value) and "does not unpickle" in str(info.value)


def test_a_damaged_weights_file_is_one_line(tmp_path):
    path = tmp_path / "cut.pt"
    torch.save({"w": torch.zeros(100)}, path)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(AdvlandError) as info:
        advland.load_model(path, model="mlp", data="digits")
    assert "is damaged or not a PyTorch weights file" in str(info.value) and "\n" not in str(info.value)


def test_key_mismatch_is_one_line_listing_a_few(tmp_path):
    official = OfficialPreActResNet18(in_channels=1, width=0.125)
    state = official.state_dict()
    state.pop("linear.weight")
    state["extra.weight"] = torch.zeros(2)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(AdvlandError) as info:
        advland.load_model(path, model="preact_resnet18", data="digits", model_kwargs={"width": 0.125})
    message = str(info.value)
    assert "\n" not in message and "1 missing (linear.weight)" in message and "1 unexpected (extra.weight)" in message


def test_safetensors_and_prefixes(tmp_path):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    path = tmp_path / "w.safetensors"
    save_file({f"_orig_mod.model.{k}": v.contiguous() for k, v in model.state_dict().items()}, str(path))
    (tmp_path / "nets.py").write_text(
        "from torch import nn\n\ndef make(hidden=0):\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))\n")
    sys.path.insert(0, str(tmp_path))
    try:
        loaded = advland.load_model(path, model="nets:make")
    finally:
        sys.path.remove(str(tmp_path))
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(loaded(x), model(x))


@pytest.fixture
def official_digits_weights(tmp_path, monkeypatch):
    """An official-layout PreActResNet-18 (width 1/8) for digits as a bare .pt state dict; cwd = tmp_path."""
    monkeypatch.chdir(tmp_path)
    model = _randomized(OfficialPreActResNet18(in_channels=1, width=0.125))
    torch.save(model.state_dict(), tmp_path / "ext.pt")
    return model


SOURCE = ["--model", "preact_resnet18", "--model-kwargs", '{"width": 0.125}', "--data", "digits"]


def test_eval_of_a_weights_file_imports_it_as_a_run(official_digits_weights, tmp_path, capsys):
    argv = ["eval", "ext.pt", *SOURCE, "--norm", "linf", "--eps", "0.1", "--attacks", "pgd", "--steps", "2",
            "--n", "24", "--no-sanity", "--no-progress"]
    assert main(argv) == 0
    assert "imported ext.pt as the run runs/ext" in capsys.readouterr().out
    (saved,) = (tmp_path / "runs" / "ext").glob("eval_linf_0.1_best.json")
    x, y = datasets.load("digits", "test")
    with torch.no_grad():
        clean = (official_digits_weights(x[:24]).argmax(1) == y[:24]).float().mean().item()
    assert json.loads(saved.read_text())["accuracy"]["clean"] == pytest.approx(clean)
    assert advland.Run(tmp_path / "runs" / "ext").config().model.normalize == "none"


@pytest.mark.parametrize("argv", [
    ["landscape", "ext.pt", "--dims", "1", "--steps", "3", "--n", "16", "--norm", "linf", "--eps", "0.1",
     "--attack-steps", "1", "--no-progress"],
    ["interpolate", "ext.pt", "ext.pt", "--steps", "3", "--n", "16", "--norm", "linf", "--eps", "0.1",
     "--no-progress"],
    ["hessian", "ext.pt", "--loss", "clean", "--top-k", "1", "--n", "16", "--norm", "linf", "--eps", "0.1"],
    ["gradients", "ext.pt", "--n", "16", "--eps-linf", "0.1", "--directions", "1"],
    ["flatness", "ext.pt", "--n", "16", "--samples", "1", "--norm", "linf", "--eps", "0.1",
     "--attack-steps", "1"],
], ids=lambda argv: argv[0])
def test_every_analysis_takes_a_weights_file(official_digits_weights, tmp_path, argv):
    assert main([*argv, *SOURCE]) == 0
    assert list((tmp_path / "runs" / "ext" / "landscape").glob("*.json"))


@pytest.mark.parametrize("argv, expected", [
    (["eval", "ext.pt", "--norm", "linf", "--eps", "0.1"], "say what it is with --model NAME"),
    (["eval", "ext.pt", *SOURCE], "carries no threat model: give --norm and --eps"),
    (["flatness", "ext.pt", *SOURCE], "give --norm and --eps"),
    (["eval", "ext.pt", *SOURCE, "--norm", "linf", "--eps", "0.1", "--model-kwargs", "[1]"], "JSON object"),
    (["eval", "nope.pt", *SOURCE], "no run directory or weights file at nope.pt"),
])
def test_weights_file_errors_are_one_line(official_digits_weights, capsys, argv, expected):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


def test_a_run_of_a_user_model_records_its_factory(tmp_path, monkeypatch, capsys):
    (tmp_path / "usernets.py").write_text(
        "from torch import nn\n\ndef make(input_shape, num_classes, hidden=16):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1] * input_shape[-2], hidden), nn.ReLU(),\n"
        "                         nn.Linear(hidden, num_classes))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    import usernets

    overrides = [f"out_dir={tmp_path}", "epochs=1", "threat.steps=1", "eval.steps=1", "eval.test_n=20"]
    config = advland.load_config("digits/at", [*overrides, "name=rebuilt"])
    trainer = Trainer(config, model=usernets.make((1, 8, 8), 10, hidden=8), model_factory="usernets:make",
                      model_kwargs={"hidden": 8}, progress=False)
    trainer.fit()
    model = advland.load(tmp_path / "rebuilt")
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(model(x), trainer.model.eval()(x))

    config = advland.load_config("digits/at", [*overrides, "name=opaque"])
    Trainer(config, model=usernets.make((1, 8, 8), 10), progress=False).fit()
    assert main(["eval", str(tmp_path / "opaque"), "--attacks", "pgd", "--n", "8", "--no-sanity"]) == 2
    err = capsys.readouterr().err
    assert "without a model_factory; pass --model package.module:factory" in err and err.count("\n") == 1
    assert main(["eval", str(tmp_path / "opaque"), "--model", "usernets:make", "--attacks", "pgd", "--n", "8",
                 "--steps", "1", "--no-sanity", "--no-progress"]) == 0


def test_a_factory_that_builds_another_model_is_refused(tmp_path, monkeypatch):
    (tmp_path / "othernets.py").write_text("from torch import nn\n\ndef make():\n    return nn.Linear(3, 3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = advland.load_config("digits/at", [f"out_dir={tmp_path}", "epochs=1"])
    with pytest.raises(AdvlandError, match="builds a model that differs"):
        Trainer(config, model=nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), model_factory="othernets:make")
