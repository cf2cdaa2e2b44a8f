"""Training curves of a run, from its metrics.jsonl records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import plt, save


def plot_training_curves(records: list[dict[str, Any]], path: str | Path) -> Path:
    """Loss, accuracies (train/val, clean/robust), and the eps and learning-rate schedules per epoch."""
    epochs = [r["epoch"] for r in records]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(epochs, [r["train_loss"] for r in records])
    axes[0].set(title="training loss", xlabel="epoch")
    for key, style in (("train_clean_acc", "-"), ("train_robust_acc", "-"), ("val_clean_acc", "--"), ("val_robust_acc", "--")):
        axes[1].plot(epochs, [r[key] for r in records], style, label=key.replace("_acc", ""))
    axes[1].set(title="accuracy", xlabel="epoch", ylim=(0, 1))
    axes[1].legend(fontsize=8)
    axes[2].plot(epochs, [r["eps"] for r in records], label="eps", color="tab:red")
    axes[2].set(title="schedules (last value of each epoch)", xlabel="epoch")
    axes[2].set_ylabel("eps", color="tab:red")
    lr_axis = axes[2].twinx()
    lr_axis.plot(epochs, [r["lr"] for r in records], color="tab:blue")
    lr_axis.set_ylabel("learning rate", color="tab:blue")
    return save(fig, path)
