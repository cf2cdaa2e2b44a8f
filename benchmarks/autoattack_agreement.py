"""Check `advland eval` against an independent run of the official AutoAttack on the saved model.

The independent run rebuilds the network from the safetensors file by hand (no advland.load),
reads the digits test split with scikit-learn directly, and calls pyautoattack with another seed.

    python benchmarks/autoattack_agreement.py RUN_DIR      # after: advland eval RUN_DIR
"""

import json
import sys
from pathlib import Path

import torch
from pyautoattack import AutoAttack
from safetensors.torch import load_file
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn


def digits_cnn(weights: dict) -> nn.Module:
    """cnn_small on 8x8 digits with its Normalize wrapper, written out independently."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1)
            self.fc1, self.fc2 = nn.Linear(64 * 16, 128), nn.Linear(128, 10)
            self.mean, self.std = weights["0.mean"], weights["0.std"]

        def forward(self, x):
            x = (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)
            x = torch.max_pool2d(torch.relu(self.conv2(torch.relu(self.conv1(x)))), 2).flatten(1)
            return self.fc2(torch.relu(self.fc1(x)))

    net = Net()
    rename = {"conv1": "1.features.0", "conv2": "1.features.2", "fc1": "1.classifier.0", "fc2": "1.classifier.2"}
    net.load_state_dict({f"{k}.{p}": weights[f"{v}.{p}"] for k, v in rename.items() for p in ("weight", "bias")})
    return net.eval()


def main(run_dir: str) -> None:
    run = Path(run_dir)
    ours = json.loads((run / "eval_linf_0.2_best.json").read_text())["accuracy"]["autoattack"]
    model = digits_cnn(load_file(str(run / "checkpoints" / "best.safetensors")))
    digits = load_digits()
    _, x_test, _, y_test = train_test_split(digits.data / 16.0, digits.target, test_size=0.2,
                                            stratify=digits.target, random_state=0)
    x = torch.tensor(x_test, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(y_test)
    x_adv, _ = AutoAttack(model, eps=0.2, norm="Linf", version="standard", seed=1).run_standard_evaluation(x, y, batch_size=500)
    with torch.no_grad():
        theirs = (model(x_adv).argmax(1) == y).float().mean().item()
    print(f"advland eval AutoAttack: {100 * ours:.2f} %   independent AutoAttack: {100 * theirs:.2f} %   "
          f"difference: {100 * abs(ours - theirs):.2f} points")


if __name__ == "__main__":
    main(sys.argv[1])
