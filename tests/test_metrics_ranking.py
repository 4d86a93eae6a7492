"""dc003.scoring.ranking: full-catalogue top-k, tie-break, exclusion, padding."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from dc003.scoring.ranking import top_k_from_scores, top_k_scores


def _oracle(scores: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """Independent reference: a full lexsort per row (higher score, then lower index)."""
    s = scores.astype(np.float64).copy()
    if exclude is not None:
        s[exclude != 0] = -np.inf
    out = []
    for row in s:
        order = np.lexsort((np.arange(row.size), -row))[: min(k, row.size)]
        out.append([int(i) if row[i] > -np.inf else -1 for i in order])
    return np.array(out, dtype=np.int32).reshape(s.shape[0], min(k, s.shape[1]))


def test_higher_score_first_then_lower_index_on_ties() -> None:
    scores = np.array([[0.5, 0.9, 0.9, 0.1]], dtype=np.float32)
    # items 1 and 2 tie at 0.9: item 1 (lower index) first; then item 0 (0.5), then item 3
    assert top_k_from_scores(scores, 2).tolist() == [[1, 2]]
    assert top_k_from_scores(scores, 4).tolist() == [[1, 2, 0, 3]]


def test_tie_straddling_the_cut_keeps_the_lowest_indices() -> None:
    # five items tie at 1.0; k=3 must pick items 0, 1, 2 (not whatever a partition leaves)
    scores = np.array([[1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 2.0, 1.0, 1.0, 1.0]])
    assert top_k_from_scores(scores, 3).tolist() == [[0, 1, 2], [1, 2, 3]]


def test_k_larger_than_the_catalogue_returns_every_item() -> None:
    scores = np.array([[0.1, 0.3, 0.2], [0.0, 0.0, 0.0]], dtype=np.float32)
    out = top_k_from_scores(scores, 10)
    assert out.shape == (2, 3) and out.dtype == np.int32
    assert out.tolist() == [[1, 2, 0], [0, 1, 2]]


def test_exclusion_removes_bought_items_and_pads_short_rows() -> None:
    scores = np.array([[0.9, 0.8, 0.7, 0.6], [0.9, 0.8, 0.7, 0.6]])
    bought = sp.csr_matrix(np.array([[1, 0, 1, 0], [1, 1, 1, 0]]))
    # row 0 loses items 0 and 2 -> [1, 3]; row 1 keeps only item 3, the rest of its k=3 is padding
    assert top_k_from_scores(scores, 3, exclude=bought).tolist() == [[1, 3, -1], [3, -1, -1]]
    assert top_k_from_scores(scores, 3).tolist() == [[0, 1, 2], [0, 1, 2]]  # no exclusion given


def test_explicit_zero_in_exclude_is_not_bought_and_caller_matrix_untouched() -> None:
    ex = sp.csr_matrix((np.array([0.0, 1.0]), (np.array([0, 0]), np.array([0, 1]))), shape=(1, 3))
    scores = np.array([[3.0, 2.0, 1.0]])
    assert top_k_from_scores(scores, 3, exclude=ex).tolist() == [[0, 2, -1]]
    assert ex.nnz == 2  # the stored zero is still there: the copy was cleaned, not the input
    assert scores.tolist() == [[3.0, 2.0, 1.0]]


def test_top_k_scores_ranks_by_inner_product_in_blocks() -> None:
    users = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    items = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6], [-1.0, 0.0]], dtype=np.float32)
    # user 0 scores: 1, 0, .8, -1 -> [0, 2, 1, 3]; user 1: 0, 1, .6, 0 -> [1, 2, 0, 3] (0 before 3 on
    # the tie); user 2: .6, .8, .96, -.6 -> [2, 1, 0, 3]
    expected = [[0, 2, 1, 3], [1, 2, 0, 3], [2, 1, 0, 3]]
    assert top_k_scores(users, items, 4).tolist() == expected
    assert top_k_scores(users, items, 4, block=1).tolist() == expected
    ex = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1]]))
    assert top_k_scores(users, items, 2, exclude=ex, block=2).tolist() == [[2, 1], [1, 2], [1, 0]]


@pytest.mark.parametrize("n_items,k", [(50, 7), (3000, 20), (5000, 100)])
def test_matches_a_full_sort_on_random_and_heavily_tied_scores(n_items: int, k: int) -> None:
    # (3000, 20) and (5000, 100) take the grouped fast path; integer scores force its tie fallback
    rng = np.random.default_rng(n_items)
    continuous = rng.standard_normal((40, n_items)).astype(np.float32)
    tied = rng.integers(0, 3, (40, n_items)).astype(np.float32)
    bought = (rng.random((40, n_items)) < 0.3).astype(np.int8)
    for scores in (continuous, tied):
        assert np.array_equal(top_k_from_scores(scores, k), _oracle(scores, k))
        got = top_k_from_scores(scores, k, exclude=sp.csr_matrix(bought))
        assert np.array_equal(got, _oracle(scores, k, bought))


def test_top_k_scores_equals_ranking_the_score_matrix() -> None:
    rng = np.random.default_rng(1)
    users = rng.standard_normal((300, 16)).astype(np.float32)
    items = rng.integers(-2, 3, (4000, 16)).astype(np.float32)  # integer vectors: many exact ties
    scores = users.round() @ items.T
    got = top_k_scores(users.round(), items, 25, block=64)
    assert np.array_equal(got, _oracle(scores, 25))


@pytest.mark.parametrize(
    "call",
    [
        lambda: top_k_from_scores(np.array([[0.1, np.nan]]), 1),
        lambda: top_k_from_scores(np.array([0.1, 0.2]), 1),
        lambda: top_k_from_scores(np.array([[0.1, 0.2]]), 0),
        lambda: top_k_from_scores(np.array([[0.1, 0.2]]), 1, exclude=sp.csr_matrix((2, 2))),
        lambda: top_k_scores(np.ones((2, 3), np.float32), np.ones((4, 2), np.float32), 1),
        lambda: top_k_scores(np.full((1, 2), np.inf, np.float32), np.ones((4, 2), np.float32), 1),
        lambda: top_k_scores(np.ones((1, 2), np.float32), np.ones((4, 2), np.float32), 1, block=0),
    ],
)
def test_bad_inputs_are_refused(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


def test_exclude_must_be_sparse() -> None:
    with pytest.raises(TypeError):
        top_k_from_scores(np.array([[0.1, 0.2]]), 1, exclude=np.zeros((1, 2)))  # type: ignore[arg-type]


def test_empty_inputs_give_empty_rankings() -> None:
    assert top_k_scores(np.empty((0, 4), np.float32), np.ones((5, 4), np.float32), 3).shape == (0, 3)
    assert top_k_scores(np.ones((2, 4), np.float32), np.empty((0, 4), np.float32), 3).shape == (2, 0)
