"""Pair samplers over a face dataset: (source, target) rows of the same identity, or of any two faces.

The keypoint methods (DepthNet, section 2: "all possible pairs of images belonging to the same identity") train on
such pairs. Pair ``k`` is a pure function of ``(seed, k)``, so every process and every resumed run sees the same
pairs.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

logger = logging.getLogger(__name__)

PAIR_MODES = ("same_identity", "any", "auto")


class FacePairs(Dataset):
    """``num_pairs`` (source, target) pairs drawn from ``identities``, returning the chosen columns of both rows.

    Args:
        dataset: anything indexable by row returning a dict (a ``datasets.Dataset`` with ``numpy`` format works).
        identities: the identity label of each row (-1 = unknown).
        mode: ``"same_identity"`` (rows of one identity, never a row with itself), ``"any"`` (two distinct rows) or
            ``"auto"`` (same identity when at least one identity has two rows, otherwise any).
        columns: the columns to return; item keys are ``source_<column>`` and ``target_<column>``.
    """

    def __init__(
        self,
        dataset,
        identities: Sequence[int],
        mode: str = "auto",
        num_pairs: int | None = None,
        seed: int = 0,
        columns: Sequence[str] = ("landmarks68",),
    ):
        if mode not in PAIR_MODES:
            raise ValueError(f"Got {mode!r} for `mode`; expected one of {PAIR_MODES}.")
        identities = np.asarray(identities, dtype=np.int64)
        if len(identities) < 2:
            raise ValueError(f"Need at least two faces to make pairs, got {len(identities)}.")
        groups: dict[int, list[int]] = defaultdict(list)
        for row, identity in enumerate(identities):
            if identity >= 0:
                groups[int(identity)].append(row)
        self.groups = [np.asarray(rows) for _, rows in sorted(groups.items()) if len(rows) >= 2]
        if mode == "auto":
            mode = "same_identity" if self.groups else "any"
            logger.info("Pairing faces by %s.", "identity" if self.groups else "any two faces (no identities)")
        if mode == "same_identity" and not self.groups:
            raise ValueError("mode='same_identity' but no identity has two or more faces; use mode='any'.")
        self.mode, self.dataset, self.seed, self.columns = mode, dataset, seed, tuple(columns)
        self.num_rows = len(identities)
        if mode == "same_identity":
            sizes = np.array([len(g) for g in self.groups])
            self._group_weights = sizes * (sizes - 1) / np.sum(sizes * (sizes - 1))  # uniform over ordered pairs
            default = int(np.sum(sizes * (sizes - 1)))
        else:
            default = self.num_rows * (self.num_rows - 1)
        self.num_pairs = int(num_pairs) if num_pairs is not None else default

    def __len__(self) -> int:
        return self.num_pairs

    def pair(self, index: int) -> tuple[int, int]:
        """Row indices (source, target) of pair ``index``."""
        if not 0 <= index < self.num_pairs:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, index])
        if self.mode == "same_identity":
            group = self.groups[rng.choice(len(self.groups), p=self._group_weights)]
            source, target = rng.choice(len(group), size=2, replace=False)
            return int(group[source]), int(group[target])
        source, target = rng.choice(self.num_rows, size=2, replace=False)
        return int(source), int(target)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        source, target = self.pair(index)
        item = {}
        for prefix, row in (("source", source), ("target", target)):
            record = self.dataset[row]
            for column in self.columns:
                item[f"{prefix}_{column}"] = torch.as_tensor(np.asarray(record[column], dtype=np.float32))
        return item
