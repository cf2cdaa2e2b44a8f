"""Extra training data: memory-mapped files (.npz members, .npy pairs), checks, the run's record, and the
composition of the minibatches."""

from __future__ import annotations

import hashlib
import math
import zipfile

import numpy as np
import pytest
import torch

from advland.data import DatasetError
from advland.data.extra import ExtraData, ExtraMix

SHAPE = (1, 8, 8)


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 8, 8, 1), dtype=np.uint8)


def _labels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed + 1).integers(0, 10, size=n).astype(np.int64)


def test_uncompressed_npz_members_are_memory_mapped(tmp_path):
    """The release layout: image (N, H, W, C) uint8 and label; mapped, not read, and converted per batch."""
    path = tmp_path / "gen.npz"
    images, labels = _images(50), _labels(50)
    np.savez(path, image=images, label=labels)
    extra = ExtraData(path, SHAPE, 10)
    assert isinstance(extra.x, np.memmap) and isinstance(extra.y, np.memmap) and len(extra) == 50
    assert extra.layout == "channels_last"
    x, y = extra.examples(torch.tensor([7, 3, 3, 40]))
    expected = torch.from_numpy(images[[3, 3, 7, 40]]).float().permute(0, 3, 1, 2) / 255  # read in file order
    assert x.shape == (4, *SHAPE) and x.dtype == torch.float32
    assert torch.equal(x, expected) and torch.equal(y, torch.from_numpy(labels[[3, 3, 7, 40]]))


def test_float_images_in_the_dataset_layout_and_a_zip64_entry(tmp_path):
    """x/y keys, float32 (N, C, H, W); written through zipfile with zip64 local headers (as np.savez writes
    members over 4 GB), whose extra field the offset must skip."""
    path = tmp_path / "floats.npz"
    images = np.random.default_rng(2).random((20, *SHAPE), dtype=np.float32)
    labels = _labels(20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, array in (("x", images), ("y", labels)):
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array)
    extra = ExtraData(path, SHAPE, 10)
    x, y = extra.examples(torch.arange(20))
    assert extra.layout == "same" and torch.equal(x, torch.from_numpy(images))
    assert torch.equal(y, torch.from_numpy(labels))


def test_a_directory_of_two_npy_files_and_images_without_a_channel_axis(tmp_path):
    images, labels = _images(12)[..., 0], _labels(12)[:, None]  # (N, H, W) and labels (N, 1)
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "y.npy", labels)
    extra = ExtraData(tmp_path, SHAPE, 10)
    x, y = extra.examples(torch.tensor([0, 11]))
    assert extra.layout == "no_channel" and x.shape == (2, *SHAPE)
    assert torch.equal(x[:, 0], torch.from_numpy(images[[0, 11]]).float() / 255)
    assert y.tolist() == labels[[0, 11], 0].tolist()


def test_the_record_holds_the_files_sha256_and_size(tmp_path):
    path = tmp_path / "gen.npz"
    np.savez(path, image=_images(30), label=_labels(30))
    record = ExtraData(path, SHAPE, 10).record()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert record == {"path": str(path.resolve()), "n": 30,
                      "files": [{"name": "gen.npz", "bytes": path.stat().st_size, "sha256": digest}]}


@pytest.mark.parametrize(("write", "message"), [
    (lambda p: np.savez_compressed(p / "c.npz", x=_images(4), y=_labels(4)), "compressed .* np.savez"),
    (lambda p: np.savez(p / "c.npz", x=_images(4), y=_labels(4) + 10), r"labels must lie in 0\.\.9"),
    (lambda p: np.savez(p / "c.npz", x=_images(4), y=_labels(3)), "4 images but labels of shape"),
    (lambda p: np.savez(p / "c.npz", x=_images(4), y=_labels(4).astype(np.float32)), "labels must be integers"),
    (lambda p: np.savez(p / "c.npz", x=_images(4)[:, :4], y=_labels(4)), r"examples of shape \(4, 8, 1\)"),
    (lambda p: np.savez(p / "c.npz", pixels=_images(4), y=_labels(4)), "needs x or image"),
    (lambda p: (p / "c.npz").write_text("not a zip"), "not an .npz file"),
])
def test_bad_files_are_one_line_errors(tmp_path, write, message):
    write(tmp_path)
    with pytest.raises(DatasetError, match=message):
        ExtraData(tmp_path / "c.npz", SHAPE, 10)


def test_float_images_outside_the_unit_interval_are_refused_when_read(tmp_path):
    images = np.random.default_rng(0).random((6, *SHAPE), dtype=np.float32)
    images[4] *= 255
    np.savez(tmp_path / "f.npz", x=images, y=_labels(6))
    extra = ExtraData(tmp_path / "f.npz", SHAPE, 10)
    extra.examples(torch.tensor([0, 1, 2]))
    with pytest.raises(DatasetError, match=r"outside \[0, 1\]"):
        extra.examples(torch.tensor([3, 4]))


def test_every_batch_holds_the_configured_share(tmp_path):
    np.savez(tmp_path / "g.npz", image=_images(1000), label=_labels(1000))
    mix = ExtraMix(ExtraData(tmp_path / "g.npz", SHAPE, 10), batch_size=64, fraction=0.7, seed=5)
    assert (mix.n_extra, mix.n_original) == (44, 20)  # floor(64 * 0.7) as Wang et al.'s sampler
    n = 300
    order = mix.order(3, n)
    batches = order.view(-1, 64)
    assert len(batches) == math.ceil(n / 64)  # the batches of an epoch without extra data
    assert all(int((b >= n).sum()) == 44 for b in batches)  # 44 extra, 20 original in every batch
    originals = order[order < n]
    assert len(originals.unique()) == len(originals) == 5 * 20  # a permutation's prefix: no original twice
    assert order.max() < n + 1000
    assert all(bool((b[:20] >= n).any()) for b in batches)  # shuffled together, not originals first
    assert torch.equal(order, mix.order(3, n))  # seeded by (seed, epoch)
    assert not torch.equal(order, mix.order(4, n))


def test_the_examples_of_combined_indices(tmp_path):
    images, labels = _images(30), _labels(30)
    np.savez(tmp_path / "g.npz", image=images, label=labels)
    mix = ExtraMix(ExtraData(tmp_path / "g.npz", SHAPE, 10), batch_size=4, fraction=0.5, seed=0)
    x, y = torch.rand(10, *SHAPE), torch.arange(10) % 10
    xb, yb = mix.examples(x, y, torch.tensor([12, 3, 10, 7]))  # extra 2 and 0, originals 3 and 7
    assert torch.equal(xb[:2], x[[3, 7]]) and torch.equal(yb[:2], y[[3, 7]])
    assert torch.equal(xb[2:], torch.from_numpy(images[[0, 2]]).float().permute(0, 3, 1, 2) / 255)
    assert yb[2:].tolist() == labels[[0, 2]].tolist()


def test_a_training_set_too_small_for_the_batches(tmp_path):
    np.savez(tmp_path / "g.npz", image=_images(10), label=_labels(10))
    mix = ExtraMix(ExtraData(tmp_path / "g.npz", SHAPE, 10), batch_size=10, fraction=0.5, seed=0)
    assert mix.n_batches(12) == 2 and mix.n_batches(9) == 1  # ceil(12 / 10) = 2 batches of 5 originals; 9: one
    with pytest.raises(DatasetError, match="takes 5 original examples but the training set has 4"):
        mix.order(0, 4)


def test_a_fraction_leaving_no_examples_of_one_kind_is_refused(tmp_path):
    np.savez(tmp_path / "g.npz", image=_images(10), label=_labels(10))
    extra = ExtraData(tmp_path / "g.npz", SHAPE, 10)
    with pytest.raises(DatasetError, match="extra_fraction=0.01 of data.batch_size=32"):
        ExtraMix(extra, 32, 0.01, 0)


# ---------------------------------------------------------------- in training

def test_training_with_extra_data_reads_it_only_in_training_steps(tmp_path, monkeypatch):
    """digits with 300 extra images: every step reads floor(64 * 0.5) = 32 of them, the batches hold 32 of 64,
    validation and test never read the file, and summary.json records its SHA-256 and size."""
    from advland.build import load_split
    from advland.config import load_config
    from advland.train import Trainer

    path = tmp_path / "extra.npz"
    np.savez(path, image=_images(300), label=_labels(300))
    reads: list[int] = []
    original = ExtraData.examples

    def counted(self, idx):
        reads.append(len(idx))
        return original(self, idx)

    monkeypatch.setattr(ExtraData, "examples", counted)
    config = load_config("digits/at", [f"out_dir={tmp_path}", "name=extra", "epochs=2", "data.train_n=256",
                                       "data.batch_size=64", f"data.extra={path}", "data.extra_fraction=0.5",
                                       "threat.steps=1", "eval.test_n=50"])

    class Steps:
        """How many reads of the file there were after every optimizer step."""

        def __init__(self):
            self.seen: list[int] = []

        def on_step_end(self, trainer):
            self.seen.append(len(reads))

    steps = Steps()
    trainer = Trainer(config, callbacks=[steps], progress=False)
    batches = list(trainer.batches(0))
    assert len(batches) == 4 and all(len(b) == 64 and int((b >= 256).sum()) == 32 for b in batches)
    summary = trainer.fit()
    assert all(r == 32 for r in reads)
    assert len(steps.seen) == 8 and reads and len(reads) == steps.seen[-1]  # nothing read after the last step
    assert steps.seen == list(range(len(reads) - 7, len(reads) + 1))  # one read per step (and one warm-up batch)
    for split, (x, y) in (("val", (trainer.data.x_val, trainer.data.y_val)), ("test", (trainer.data.x_test, trainer.data.y_test))):
        x0, y0 = load_split(config, split)
        assert torch.equal(x, x0) and torch.equal(y, y0), split
    record = summary["extra_data"]
    assert record["n"] == 300 and record["files"] == [
        {"name": "extra.npz", "bytes": path.stat().st_size, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}]
