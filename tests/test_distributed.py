"""Data parallelism: 2 gloo processes (spawned here) against one process.

The workers set the torchrun environment variables (RANK, WORLD_SIZE, MASTER_ADDR/PORT) themselves,
so they exercise the same code path as ``torchrun --nproc_per_node=2 -m advland ...``.
"""

from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from advland import distributed as dist
from advland.config import load_config
from advland.errors import AdvlandError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank: int, world: int, port: int) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init("cpu")


def _spawn(fn, *args, world: int = 2) -> None:
    mp.spawn(fn, args=(world, _free_port(), *args), nprocs=world, join=True)


# ---------------------------------------------------------------- helpers without a group

def test_single_process_fallback_is_a_no_op():
    assert (dist.rank(), dist.world_size(), dist.is_main()) == (0, 1, True)
    assert dist.shard(list(range(5))) == [0, 1, 2, 3, 4]
    assert dist.shard(list(range(5)), r=1, n=2) == [1, 3]
    assert dist.all_gather_object({"a": 1}) == [{"a": 1}]
    assert dist.sum_floats(1.0, 2.0) == [1.0, 2.0]
    assert dist.check_divisible(64) == 64
    dist.barrier()


# ---------------------------------------------------------------- training

def _train_worker(rank: int, world: int, port: int, out: str, overrides: list[str]) -> None:
    _join(rank, world, port)
    from advland.train import Trainer

    try:
        bad = load_config("digits/at", [f"out_dir={out}", "name=bad", "data.batch_size=63"])
        try:
            Trainer(bad, progress=False)
            raise AssertionError("an indivisible batch must be rejected")
        except AdvlandError as error:
            assert "divisible" in str(error) and "\n" not in str(error)
        sync = load_config("digits/at", [f"out_dir={out}", "name=bad", "distributed.sync_bn=true",
                                                       "model.kwargs={batchnorm: true}"])
        try:
            Trainer(sync, progress=False)
            raise AssertionError("SyncBatchNorm on CPU must be rejected")
        except AdvlandError as error:
            assert "sync_bn" in str(error) and "\n" not in str(error)
        config = load_config("digits/at", [f"out_dir={out}", *overrides])
        summary = Trainer(config, progress=False).fit()
        resumed = load_config("digits/at", [f"out_dir={out}", *overrides, "resume=true",
                                                          f"epochs={config.epochs + 1}"])
        summary2 = Trainer(resumed, progress=False, extend=True).fit()  # one more epoch: a recorded extension
        if rank == 0:
            with open(os.path.join(out, "summaries.json"), "w") as handle:
                json.dump([summary, summary2], handle)
    finally:
        dist.shutdown()


def test_two_process_smoke_trains_writes_on_rank_0_and_resumes(tmp_path):
    overrides = ["name=ddp", "epochs=1", "threat.steps=2", "eval.steps=2", "eval.val_steps=2", "eval.test_n=64",
                 "data.batch_size=128", "model.kwargs={batchnorm: true}"]
    _spawn(_train_worker, str(tmp_path), overrides)
    summary, summary2 = json.loads((tmp_path / "summaries.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs"] == 1 and summary2["epochs"] == 2
    run = tmp_path / "ddp"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert {p.name for p in (run / "checkpoints").iterdir() if not p.name.startswith(".")} >= {
        "state.pt", "init.safetensors", "last.safetensors", "best.safetensors"}
    state = torch.load(run / "checkpoints" / "state.pt", weights_only=True)
    assert len(state["rng_ranks"]) == 2  # every rank's RNG, for an exact resume
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


ACCURACY_OVERRIDES = ["epochs=30"]  # the recipe as shipped, the whole test split


@pytest.mark.slow
def test_two_processes_reach_the_robust_accuracy_of_one(tmp_path):
    """Same global batch (64) and seed: 2-process DDP within 2 points of 1 process (docs/scaling.md)."""
    from advland.train import Trainer

    torch.set_num_threads(1)
    one = Trainer(load_config("digits/at", [f"out_dir={tmp_path}", "name=one", *ACCURACY_OVERRIDES]),
                  progress=False).fit()
    _spawn(_train_worker, str(tmp_path / "two"), ["name=two", *ACCURACY_OVERRIDES])
    two = json.loads((tmp_path / "two" / "summaries.json").read_text())[0]
    for prefix in ("", "last_"):
        print(f"{prefix}weights: 1 process {one[prefix + 'test_robust_acc']:.4f} robust / "
              f"{one[prefix + 'test_clean_acc']:.4f} clean; 2 processes {two[prefix + 'test_robust_acc']:.4f} / "
              f"{two[prefix + 'test_clean_acc']:.4f} (best epochs {one['best_epoch']}, {two['best_epoch']})")
    # the final weights: the same number of steps on the same global batches (only the random attack
    # starts differ); measured 71.67 vs 70.83 % (docs/scaling.md)
    assert abs(one["last_test_robust_acc"] - two["last_test_robust_acc"]) <= 0.02
    # best-by-validation adds the selection noise of a 144-example validation split: measured
    # 71.94 vs 69.44 % (epochs 23 and 17), outside 2 points; the test-set noise alone is ~3 points
    assert abs(one["test_robust_acc"] - two["test_robust_acc"]) <= 0.04


# ---------------------------------------------------------------- analyses

def _analysis_model():
    torch.manual_seed(0)
    from advland.models import create_model

    model = create_model("cnn_small", input_shape=(1, 8, 8), num_classes=10, batchnorm=True).eval()
    x = torch.rand(48, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 10, (48,), generator=torch.Generator().manual_seed(2))
    return model, x, y


def _analyses(model, x, y):
    from advland.landscape import hessian, hutchinson, surface
    from advland.threat import ThreatModel

    threat = ThreatModel("linf", 0.1, 0.03, 3)
    s = surface(model, x, y, dims=2, steps=5, metrics=["clean_loss", "adv_loss", "adv_acc"], threat=threat,
                layout="contiguous")
    trace = hutchinson(hessian(model, x, y), 6, block=2, seed=3)
    return {m: v.tolist() for m, v in s.values.items()}, trace.value, trace.std_error, s.info["processes"]


def _analysis_worker(rank: int, world: int, port: int, out: str) -> None:
    _join(rank, world, port)
    try:
        torch.set_num_threads(1)
        result = _analyses(*_analysis_model())
        if rank == 0:
            with open(out, "w") as handle:
                json.dump(result, handle)
    finally:
        dist.shutdown()


def test_two_process_surface_and_hutchinson_equal_one_process(tmp_path):
    torch.set_num_threads(1)
    values, trace, std, processes = _analyses(*_analysis_model())
    assert processes == 1
    _spawn(_analysis_worker, str(tmp_path / "two.json"))
    values2, trace2, std2, processes2 = json.loads((tmp_path / "two.json").read_text())
    assert processes2 == 2
    diff = max(np.abs(np.array(values[m]) - np.array(values2[m])).max() for m in values)
    print(f"max |surface(2 processes) - surface(1 process)| = {diff:.3g}; trace {trace:.6g} vs {trace2:.6g}")
    assert diff <= 1e-5
    assert trace2 == pytest.approx(trace, rel=1e-6, abs=1e-8) and std2 == pytest.approx(std, rel=1e-6, abs=1e-8)


# ---------------------------------------------------------------- evaluation

EVAL_ARGS = ["--attacks", "pgd,cw,autoattack", "--aa-version", "custom", "--aa-attacks", "apgd-ce,square",
             "--steps", "3", "--n", "50", "--batch-size", "16", "--no-sanity", "--no-progress"]


def _eval_worker(rank: int, world: int, port: int, run: str) -> None:
    _join(rank, world, port)
    from advland.cli import main

    assert main(["eval", run, *EVAL_ARGS]) == 0


@pytest.mark.slow
def test_two_process_evaluation_equals_one_process(digits_at_run, tmp_path):
    """PGD, CW and AutoAttack sharded over 2 gloo processes (batches of 16: 4 batches, 2 per process): the
    gathered per-example results equal one process's."""
    from advland.cli import main

    run = digits_at_run[0].run.path
    saved = run / "eval_linf_0.2_best.json"
    assert main(["eval", str(run), *EVAL_ARGS]) == 0
    one = json.loads(saved.read_text())
    _spawn(_eval_worker, str(run))
    two = json.loads(saved.read_text())
    assert (one["processes"], two["processes"]) == (1, 2)
    assert two["per_example"] == one["per_example"] and two["accuracy"] == one["accuracy"]
    assert set(one["per_example"]) == {"clean", "pgd3", "cw3", "autoattack", "worst_case"}
    assert one["examples_sha256"] == two["examples_sha256"]
