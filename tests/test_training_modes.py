"""Each module of a user's model keeps its own training flag (a frozen BatchNorm stays frozen)."""

from __future__ import annotations

from advland.train import Trainer
from helpers import bn_mlp, short_config


def test_trainer_keeps_each_modules_own_training_flag(tmp_path):
    model = bn_mlp()
    frozen = [model[2], model[4]]  # the user freezes BatchNorm and turns dropout off
    for m in frozen:
        m.eval()
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append([m.training for m in frozen])
                                    if module.training else None)
    Trainer(short_config(tmp_path, "name=frozen", "epochs=2"), model=model, progress=False).fit()
    assert seen and not any(any(flags) for flags in seen)  # never switched back to train mode while training
    assert model[1].training is not None and not any(m.training for m in frozen)
