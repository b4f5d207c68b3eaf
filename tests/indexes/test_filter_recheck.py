"""Answers of a filtered search are re-checked against the filter itself.

The filter becomes a slot mask before the search runs; a remove and an add running
meanwhile can hand an allowed slot to a new id. ``drop_disallowed`` keeps such an id
out of the answer. The race itself is exercised by the contract suite
(check_filtered_searches_during_writes); here the re-check is tested directly.
"""

import numpy as np
import pytest

from nearkit import _validate


@pytest.mark.parametrize("as_mask", [False, True])
def test_disallowed_ids_are_blanked_and_moved_behind(as_mask):
    ids = np.array([[4, 7, 2, -1], [9, 8, 6, 4]], np.int64)
    dist = np.array([[0.1, 0.2, 0.3, np.inf], [0.5, 0.6, 0.7, 0.8]], np.float32)
    allowed = np.array([2, 4, 6, 8])
    filt = np.isin(np.arange(9), allowed) if as_mask else allowed  # the mask stops at 8
    _validate.drop_disallowed(ids, dist, filt)
    assert ids.tolist() == [[4, 2, -1, -1], [8, 6, 4, -1]]
    assert dist[0, :2].tolist() == pytest.approx([0.1, 0.3])
    assert dist[1, :3].tolist() == pytest.approx([0.6, 0.7, 0.8])
    assert np.isinf(dist[0, 2:]).all() and np.isinf(dist[1, 3])


def test_allowed_answers_are_left_alone():
    ids = np.array([[2, 4]], np.int64)
    dist = np.array([[0.1, 0.2]], np.float32)
    _validate.drop_disallowed(ids, dist, np.array([4, 2]))
    assert ids.tolist() == [[2, 4]] and dist.tolist() == [[pytest.approx(0.1), pytest.approx(0.2)]]
