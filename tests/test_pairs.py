"""Pair samplers: same-identity pairs never cross identities, are deterministic, and cover ordered pairs."""

import numpy as np
import pytest

from facehub.trainers.data.pairs import FacePairs

ROWS = [{"landmarks68": np.full((68, 2), i, dtype=np.float32)} for i in range(9)]
IDENTITIES = [0, 0, 0, 1, 1, 2, -1, 3, 3]


def test_same_identity_pairs_stay_within_identities_and_cover_all_ordered_pairs():
    pairs = FacePairs(ROWS, IDENTITIES, mode="same_identity", num_pairs=2000, seed=3)
    seen = {pairs.pair(k) for k in range(len(pairs))}
    expected = {(a, b) for group in ([0, 1, 2], [3, 4], [7, 8]) for a in group for b in group if a != b}
    assert seen == expected  # identity 2 (one face) and unknown faces never pair
    item = pairs[5]
    source, target = pairs.pair(5)
    assert item["source_landmarks68"][0, 0].item() == source and item["target_landmarks68"][0, 0].item() == target


def test_pairs_are_a_function_of_seed_and_index():
    a = FacePairs(ROWS, IDENTITIES, num_pairs=50, seed=1)
    b = FacePairs(ROWS, IDENTITIES, num_pairs=50, seed=1)
    c = FacePairs(ROWS, IDENTITIES, num_pairs=50, seed=2)
    assert [a.pair(k) for k in range(50)] == [b.pair(k) for k in range(50)]
    assert [a.pair(k) for k in range(50)] != [c.pair(k) for k in range(50)]


def test_auto_mode_falls_back_to_any_pairs_without_identities():
    pairs = FacePairs(ROWS, [-1] * 9, mode="auto")
    assert pairs.mode == "any" and len(pairs) == 9 * 8
    assert all(s != t for s, t in (pairs.pair(k) for k in range(len(pairs))))
    with pytest.raises(ValueError, match="no identity has two or more faces"):
        FacePairs(ROWS, [-1] * 9, mode="same_identity")
