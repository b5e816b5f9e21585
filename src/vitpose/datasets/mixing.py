"""Multi-dataset training: one concatenated dataset and a seeded, rank-aware mixing sampler.

The official multi-task and ViTPose+ runs concatenate their training sets and shuffle the union
uniformly (ref §2.7), so a dataset is drawn in proportion to its size. :class:`MixingSampler`
reproduces that when every dataset weight is 1, and otherwise draws dataset ``d`` with
probability proportional to ``weight_d * len_d`` (the weight is a per-sample weight relative to
the other datasets).

Per epoch the sampler fixes the number of samples of each dataset (its quota, by largest
remainder so the quotas add up to the epoch length), takes that many indices from the dataset
(whole permutations while the quota exceeds the dataset, then a random subset), shuffles the
union and deals it to the ranks like ``DistributedSampler``: padded with the first indices to a
multiple of the world size, rank ``r`` taking positions ``r, r + W, r + 2W, ...``. With a
per-process batch B, the ranks' i-th batches together are positions ``[i*B*W, (i+1)*B*W)`` of
the epoch order, so one process with batch ``B*W`` sees the same global batches.

Everything is a pure function of ``(seed, epoch)``: the order does not depend on the rank, the
worker count or the point a run was resumed from.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset, Sampler

__all__ = ["MixedDataset", "MixingSampler", "dataset_quotas"]


class MixedDataset(Dataset):
    """Concatenation of datasets; global index ``i`` maps to ``(dataset, local index)``.

    Args:
        datasets: the member datasets (e.g. :class:`~vitpose.datasets.topdown.TopDownDataset`),
            each non-empty.
    """

    def __init__(self, datasets: Sequence[Dataset]) -> None:
        if not datasets:
            raise ValueError("MixedDataset needs at least one dataset")
        self.datasets = list(datasets)
        self.sizes = [len(ds) for ds in self.datasets]  # type: ignore[arg-type]
        empty = [i for i, n in enumerate(self.sizes) if n == 0]
        if empty:
            raise ValueError(f"dataset(s) {empty} of the mix are empty")
        self.offsets = np.cumsum([0, *self.sizes]).tolist()

    def __len__(self) -> int:
        return self.offsets[-1]

    def locate(self, index: int) -> tuple[int, int]:
        """Global index -> ``(dataset position, local index)``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        d = bisect.bisect_right(self.offsets, index) - 1
        return d, index - self.offsets[d]

    def __getitem__(self, index: int) -> Any:
        d, local = self.locate(int(index))
        return self.datasets[d][local]

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to every member that has ``set_epoch`` (augmentation draws)."""
        for ds in self.datasets:
            if hasattr(ds, "set_epoch"):
                ds.set_epoch(epoch)


def dataset_quotas(sizes: Sequence[int], weights: Sequence[float] | None, total: int) -> list[int]:
    """Samples per dataset in one epoch of ``total`` samples.

    Args:
        sizes: dataset lengths.
        weights: per-sample weight of each dataset (None: all 1).
        total: epoch length.

    Returns:
        Quotas proportional to ``weight_d * size_d`` that add up to ``total`` (largest
        remainder, ties to the earlier dataset). Equal weights and ``total = sum(sizes)`` give
        the sizes themselves.
    """
    sizes = [int(n) for n in sizes]
    weights = [1.0] * len(sizes) if weights is None else [float(w) for w in weights]
    if len(weights) != len(sizes):
        raise ValueError(f"{len(weights)} weights for {len(sizes)} datasets")
    if any(w <= 0 for w in weights):
        raise ValueError(f"dataset weights must be > 0, got {weights}")
    mass = [w * n for w, n in zip(weights, sizes)]
    whole = sum(mass)
    if whole <= 0:
        raise ValueError("all datasets are empty")
    exact = [total * m / whole for m in mass]
    quotas = [int(np.floor(e + 1e-9)) for e in exact]
    remainder = total - sum(quotas)
    order = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - quotas[i]), i))
    for i in order[:remainder]:
        quotas[i] += 1
    return quotas


class MixingSampler(Sampler[int]):
    """Seeded sampler over a :class:`MixedDataset` with per-dataset weights, split over ranks.

    Args:
        sizes: member dataset lengths (``MixedDataset.sizes``).
        weights: per-sample weight of each dataset; None or all 1 is the official uniform
            shuffle of the concatenation.
        num_samples: epoch length over all ranks (default: the total size).
        shuffle: random order; False walks the datasets in order (equal weights only).
        seed: base seed; the order of epoch e depends only on ``(seed, e)``.
        rank: this process's rank (default: from ``vitpose.distributed``).
        world_size: number of processes (default: from ``vitpose.distributed``).
        drop_last: drop the tail that does not divide evenly over the ranks instead of padding
            with the first indices.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        weights: Sequence[float] | None = None,
        num_samples: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        drop_last: bool = False,
    ) -> None:
        from vitpose import distributed

        self.sizes = [int(n) for n in sizes]
        if not self.sizes or any(n <= 0 for n in self.sizes):
            raise ValueError(f"every dataset of the mix needs samples, got sizes {self.sizes}")
        self.weights = None if weights is None else [float(w) for w in weights]
        self.total = int(num_samples) if num_samples is not None else sum(self.sizes)
        if self.total <= 0:
            raise ValueError(f"num_samples must be > 0, got {self.total}")
        self.quotas = dataset_quotas(self.sizes, self.weights, self.total)
        if not shuffle and self.quotas != self.sizes:
            raise ValueError("shuffle=False needs equal dataset weights and the full epoch length")
        self.shuffle = shuffle
        self.seed = int(seed)
        self.world_size = distributed.get_world_size() if world_size is None else int(world_size)
        self.rank = distributed.get_rank() if rank is None else int(rank)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} outside [0, {self.world_size})")
        self.drop_last = drop_last
        self.epoch = 0
        self.offsets = np.cumsum([0, *self.sizes]).tolist()

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order :meth:`__iter__` yields."""
        self.epoch = int(epoch)

    def epoch_order(self) -> list[int]:
        """The whole epoch's global indices, before padding and the split over ranks."""
        if not self.shuffle:
            return list(range(self.total))
        rng = np.random.default_rng([self.seed, self.epoch])
        parts = []
        for d, (size, quota) in enumerate(zip(self.sizes, self.quotas)):
            full, rest = divmod(quota, size)
            chunks = [rng.permutation(size) for _ in range(full)]
            if rest:
                chunks.append(rng.permutation(size)[:rest])
            if chunks:
                parts.append(np.concatenate(chunks) + self.offsets[d])
        order = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return rng.permutation(order).tolist()

    def _per_rank(self) -> int:
        if self.drop_last:
            return self.total // self.world_size
        return -(-self.total // self.world_size)

    def __iter__(self):
        order = self.epoch_order()
        size = self._per_rank() * self.world_size
        if size > len(order):
            repeats = -(-size // len(order))
            order = (order * repeats)[:size]
        else:
            order = order[:size]
        return iter(order[self.rank::self.world_size])

    def __len__(self) -> int:
        return self._per_rank()
