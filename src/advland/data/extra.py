"""Extra training data mixed into every minibatch (e.g. the generated images of Wang et al. 2023).

The extra data is a set of additional labelled training examples that only the training batches
draw from: validation, checkpoint selection and the test never see it. Two layouts are read:

* an **uncompressed** ``.npz`` (``np.savez``, not ``np.savez_compressed``) holding the images under
  ``x`` or ``image`` and the labels under ``y`` or ``label`` (the generated-data releases of Rebuffi
  et al. 2021 and Wang et al. 2023 use ``image``/``label``). ``np.load(mmap_mode="r")`` does not map
  the members of an ``.npz``; here each member's offset inside the zip is located and mapped with
  ``np.memmap``, so a file larger than memory works. A compressed member cannot be mapped and is
  refused with the command that rewrites the file;
* a **directory** holding ``x.npy`` and ``y.npy`` (or ``image.npy`` and ``label.npy``), mapped with
  ``np.load(mmap_mode="r")``.

Images are ``uint8`` in 0..255 (divided by 255) or floating point in [0, 1] (checked on every batch
read), per example in the dataset's layout (C, H, W), channels-last (H, W, C) as the releases store
them, or (H, W) for one channel. Labels are integers in 0..num_classes - 1, checked when the file is
opened. :meth:`ExtraData.record` gives the files' SHA-256 and sizes, which the run records.

:class:`ExtraMix` composes the minibatches as Wang et al.'s sampler does: a batch of B examples
holds ``floor(B * fraction)`` extra examples, drawn uniformly with replacement, and the rest from a
fresh permutation of the original training set; an epoch has as many batches as it would have
without extra data (``ceil(n / B)``), so with fraction f it sees about (1 - f) of the originals.
Every batch holds exactly that share (for a training set too small to fill ``ceil(n / B)`` batches
with ``B - floor(B * fraction)`` originals each, the epoch has fewer batches). All draws come from a
generator seeded by (seed, epoch), so a resumed run draws the same batches.
"""

from __future__ import annotations

import hashlib
import math
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._common import DatasetError
from .batches import epoch_generator

IMAGE_KEYS, LABEL_KEYS = ("x", "image"), ("y", "label")
_LOCAL_HEADER = 30  # bytes of a zip local file header before its name and extra field


def _npz_member(path: Path, archive: zipfile.ZipFile, key: str) -> np.memmap:
    """Memory-map the member ``key`` of an uncompressed .npz."""
    info = archive.getinfo(f"{key}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        raise DatasetError(f"data.extra: {path} stores {key!r} compressed (np.savez_compressed), which cannot be "
                           f"memory-mapped; rewrite it uncompressed with np.savez, or as a directory of .npy files")
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(_LOCAL_HEADER)
        if local[:4] != b"PK\x03\x04":
            raise DatasetError(f"data.extra: {path} is not a readable .npz (bad zip entry for {key!r})")
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + _LOCAL_HEADER + name_length + extra_length)
        version = np.lib.format.read_magic(f)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(f)
        offset = f.tell()
    if dtype.hasobject:
        raise DatasetError(f"data.extra: {path} member {key!r} holds Python objects; save numeric arrays")
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, order="F" if fortran else "C", offset=offset)


def _pick(keys: set[str], wanted: tuple[str, ...], path: Path) -> str:
    found = [k for k in wanted if k in keys]
    if not found:
        raise DatasetError(f"data.extra: {path} holds {', '.join(sorted(keys)) or 'nothing'}; it needs "
                           f"{' or '.join(wanted)} (images: {'/'.join(IMAGE_KEYS)}, labels: {'/'.join(LABEL_KEYS)})")
    return found[0]


def open_arrays(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """The memory-mapped (images, labels) of an uncompressed .npz or of a directory of two .npy files, and
    the files they live in."""
    path = Path(path).expanduser()
    if path.is_dir():
        names = {p.stem for p in path.glob("*.npy")}
        x_key, y_key = _pick(names, IMAGE_KEYS, path), _pick(names, LABEL_KEYS, path)
        files = [path / f"{x_key}.npy", path / f"{y_key}.npy"]
        return np.load(files[0], mmap_mode="r"), np.load(files[1], mmap_mode="r"), files
    if not path.is_file():
        raise DatasetError(f"data.extra: {path} does not exist; give an uncompressed .npz or a directory with "
                           f"x.npy and y.npy")
    try:
        with zipfile.ZipFile(path) as archive:
            names = {n[:-4] for n in archive.namelist() if n.endswith(".npy")}
            x_key, y_key = _pick(names, IMAGE_KEYS, path), _pick(names, LABEL_KEYS, path)
            return _npz_member(path, archive, x_key), _npz_member(path, archive, y_key), [path]
    except zipfile.BadZipFile:
        raise DatasetError(f"data.extra: {path} is not an .npz file; give an uncompressed .npz (np.savez) or a "
                           f"directory with x.npy and y.npy") from None


def sha256(path: Path, chunk: int = 1 << 22) -> str:
    """The SHA-256 of a file, read in chunks (works for files larger than memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class ExtraData:
    """Memory-mapped extra examples for a dataset with per-example ``input_shape`` and ``num_classes``."""

    def __init__(self, path: str | Path, input_shape: tuple[int, ...], num_classes: int):
        self.path = Path(path).expanduser()
        self.x, y, self.files = open_arrays(self.path)
        self.input_shape = tuple(input_shape)
        self.layout = self._layout(self.x.shape)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or len(y) != len(self.x):
            raise DatasetError(f"data.extra: {self.path} has {len(self.x)} images but labels of shape {y.shape}; "
                               f"give one integer label per image")
        if not np.issubdtype(y.dtype, np.integer):
            raise DatasetError(f"data.extra: labels must be integers, {self.path} stores {y.dtype}")
        if len(y) == 0:
            raise DatasetError(f"data.extra: {self.path} holds no examples")
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= num_classes:
            raise DatasetError(f"data.extra: labels must lie in 0..{num_classes - 1}, {self.path} has {low}..{high}")
        if self.x.dtype != np.uint8 and not np.issubdtype(self.x.dtype, np.floating):
            raise DatasetError(f"data.extra: images must be uint8 (0..255) or floats in [0, 1], "
                               f"{self.path} stores {self.x.dtype}")
        self.y = y

    def _layout(self, shape: tuple[int, ...]) -> str:
        """How one stored example maps to ``input_shape``: as is, channels-last, or without its channel axis."""
        example, c = tuple(shape[1:]), self.input_shape[0]
        if example == self.input_shape:
            return "same"
        if len(self.input_shape) == 3 and example == (*self.input_shape[1:], c):
            return "channels_last"
        if c == 1 and example == self.input_shape[1:]:
            return "no_channel"
        hwc = f" or {(*self.input_shape[1:], c)}" if len(self.input_shape) == 3 else ""
        raise DatasetError(f"data.extra: {self.path} has examples of shape {example}; the dataset's are "
                           f"{self.input_shape}{hwc}")

    def __len__(self) -> int:
        return len(self.y)

    def examples(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The examples at ``idx`` (read in file order) as float32 in [0, 1] of shape (len(idx), *input_shape)
        and int64 labels, on the CPU."""
        order = np.sort(idx.cpu().numpy())
        x, y = np.asarray(self.x[order]), np.asarray(self.y[order])
        if x.dtype == np.uint8:
            images = torch.from_numpy(x).float().div_(255.0)
        else:
            images = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            if len(images) and (images.min() < 0 or images.max() > 1 or images.isnan().any()):
                raise DatasetError(f"data.extra: {self.path} holds float images outside [0, 1] (e.g. among "
                                   f"examples {order[:3].tolist()}); scale them to [0, 1] or store uint8")
        if self.layout == "channels_last":
            images = images.permute(0, 3, 1, 2)
        elif self.layout == "no_channel":
            images = images.unsqueeze(1)
        return images.contiguous(), torch.from_numpy(y.astype(np.int64))

    def record(self) -> dict[str, Any]:
        """What a run records about the file: its path, number of examples, and every file's size and SHA-256."""
        return {"path": str(self.path.resolve()), "n": len(self),
                "files": [{"name": f.name, "bytes": f.stat().st_size, "sha256": sha256(f)} for f in self.files]}


class ExtraMix:
    """A batch source (:mod:`advland.data.batches`) composing every training minibatch of B examples of
    ``floor(B * fraction)`` extra examples (drawn uniformly with replacement) and the rest from a fresh
    permutation of the n originals.

    A batch is a tensor of *combined* indices: i < n is original example i, i >= n extra example i - n;
    within a batch the two kinds are shuffled together, so that every process of a data-parallel run
    takes the same mixture."""

    def __init__(self, extra: ExtraData, batch_size: int, fraction: float, seed: int):
        self.extra, self.batch_size, self.seed = extra, batch_size, seed
        self.record = extra.record()
        """What the run records: the file's path, size and SHA-256 (:meth:`ExtraData.record`)."""
        self.n_extra = int(batch_size * fraction)
        self.n_original = batch_size - self.n_extra
        if self.n_extra == 0 or self.n_original == 0:
            raise DatasetError(f"data.extra_fraction={fraction} of data.batch_size={batch_size} leaves "
                               f"{self.n_extra} extra and {self.n_original} original examples per batch; "
                               f"choose a fraction that keeps both at least 1")

    def n_batches(self, n: int) -> int:
        """Batches of an epoch over n originals: ``ceil(n / B)``, fewer only when n is too small to fill them."""
        if n < self.n_original:
            raise DatasetError(f"data.extra: a batch takes {self.n_original} original examples but the training "
                               f"set has {n}; lower data.batch_size or raise data.extra_fraction")
        return min(math.ceil(n / self.batch_size), n // self.n_original)

    def order(self, epoch: int, n: int) -> torch.Tensor:
        """The combined indices of epoch ``epoch``'s batches, one after the other (each exactly B long)."""
        generator = epoch_generator(self.seed, epoch)
        n_batches = self.n_batches(n)
        originals = torch.randperm(n, generator=generator)[: n_batches * self.n_original].view(n_batches, -1)
        extra = n + torch.randint(len(self.extra), (n_batches, self.n_extra), generator=generator)
        batches = torch.cat([originals, extra], dim=1)
        shuffle = torch.rand(batches.shape, generator=generator).argsort(dim=1)
        return batches.gather(1, shuffle).reshape(-1)

    def examples(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The examples at combined indices ``idx``: the originals from (x, y), the extra ones read from the file
        (onto x's device); originals first."""
        n = len(y)
        is_extra = idx >= n
        originals = idx[~is_extra].to(x.device)
        x_extra, y_extra = self.extra.examples(idx[is_extra] - n)
        return (torch.cat([x[originals], x_extra.to(x.device)]), torch.cat([y[originals], y_extra.to(y.device)]))
