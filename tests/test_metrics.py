"""dc003.scoring.metrics against hand-computed values (the arithmetic is in the comments)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from dc003.scoring.metrics import (
    bootstrap_ci,
    bootstrap_coverage_ci,
    category_distribution,
    cold_start_degradation,
    cold_start_degradation_ci,
    coverage_at_k,
    distribution_distance,
    evaluate_ranking,
    map_at_k,
    ndcg_at_k,
    recall_at_k,
    recall_curve,
)

L3 = 1 / math.log2(3)  # gain at rank 2
L4 = 1 / math.log2(4)  # gain at rank 3 (= 0.5)
L6 = 1 / math.log2(6)  # gain at rank 5

# one user: hits at ranks 2 (item 1) and 5 (item 2); |truth| = 2
TOP = np.array([[3, 1, 4, 0, 2]])
TRUTH = [np.array([1, 2])]


def _apk(actual: list[int], predicted: list[int], k: int) -> float:
    """Kaggle's reference apk (ml_metrics), kept verbatim in spirit as an independent oracle."""
    predicted = predicted[:k]
    score, num_hits = 0.0, 0.0
    for i, p in enumerate(predicted):
        if p in actual and p not in predicted[:i]:
            num_hits += 1.0
            score += num_hits / (i + 1.0)
    return score / min(len(actual), k)


def test_recall_hand_computed() -> None:
    # @3: only item 1 is in [3, 1, 4] -> 1/2; @5: both -> 2/2
    assert recall_at_k(TOP, TRUTH, 3).tolist() == [0.5]
    assert recall_at_k(TOP, TRUTH, 5).tolist() == [1.0]


def test_ndcg_hand_computed() -> None:
    # @3: DCG = 1/log2(3); IDCG = 2 hits (min(2, 3)) = 1 + 1/log2(3)
    assert ndcg_at_k(TOP, TRUTH, 3)[0] == pytest.approx(L3 / (1 + L3))
    # @5: DCG = 1/log2(3) + 1/log2(6); same IDCG
    assert ndcg_at_k(TOP, TRUTH, 5)[0] == pytest.approx((L3 + L6) / (1 + L3))
    # @1: no hit at rank 1 -> 0; IDCG from min(2, 1) = 1 hit
    assert ndcg_at_k(TOP, TRUTH, 1)[0] == 0.0
    # |truth| = 3 > k = 2, hits at ranks 1 and 2: IDCG from min(3, 2) = 2 hits -> NDCG 1
    assert ndcg_at_k(np.array([[7, 8, 9]]), [np.array([7, 8, 9])], 2)[0] == pytest.approx(1.0)
    # hit at rank 2 only: (1/log2 3) / (1 + 1/log2 3)
    assert ndcg_at_k(np.array([[0, 8, 9]]), [np.array([7, 8, 9])], 2)[0] == pytest.approx(L3 / (1 + L3))


def test_map_hand_computed() -> None:
    # @5: P(2) = 1/2 at item 1, P(5) = 2/5 at item 2 -> (0.5 + 0.4) / min(2, 5) = 0.45
    assert map_at_k(TOP, TRUTH, 5)[0] == pytest.approx(0.45)
    # @3: only P(2) = 1/2 -> 0.5 / min(2, 3) = 0.25
    assert map_at_k(TOP, TRUTH, 3)[0] == pytest.approx(0.25)
    # |truth| > k: truth of 3 items, k = 2, hits at ranks 1 and 2 -> (1 + 1) / min(3, 2) = 1
    assert map_at_k(np.array([[7, 8, 9]]), [np.array([7, 8, 9])], 2)[0] == pytest.approx(1.0)


def test_map_matches_kaggle_apk_on_random_lists() -> None:
    rng = np.random.default_rng(0)
    top = np.stack([rng.permutation(40)[:12] for _ in range(200)])
    truth = [rng.choice(40, size=int(rng.integers(1, 15)), replace=False) for _ in range(200)]
    ours = map_at_k(top, truth, 12)
    ref = [_apk(t.tolist(), row.tolist(), 12) for t, row in zip(truth, top, strict=True)]
    np.testing.assert_allclose(ours, ref)


def test_perfect_ranking_scores_one_and_no_hit_scores_zero() -> None:
    truth = [np.array([5, 6, 7]), np.array([2])]
    perfect = np.array([[7, 5, 6, 0], [2, 0, 1, 3]])
    miss = np.array([[0, 1, 2, 3], [0, 1, 3, 4]])
    for fn in (recall_at_k, ndcg_at_k, map_at_k):
        assert fn(perfect, truth, 4).tolist() == [1.0, 1.0]
        assert fn(miss, truth, 4).tolist() == [0.0, 0.0]


def test_user_with_empty_truth_is_skipped() -> None:
    top = np.array([[0, 1], [0, 1], [1, 0]])
    truth = [np.array([0]), np.array([], dtype=np.int64), np.array([0])]
    # users 0 and 2: recall@1 = 1 and 0; user 1 is NaN (skipped), so the mean is 0.5, not 1/3
    r = recall_at_k(top, truth, 1)
    assert r[0] == 1.0 and math.isnan(r[1]) and r[2] == 0.0
    assert math.isnan(ndcg_at_k(top, truth, 1)[1]) and math.isnan(map_at_k(top, truth, 1)[1])
    assert bootstrap_ci(r)[0] == 0.5
    # the curve skips it too: @1 mean(1, 0) = 0.5, @2 mean(1, 1) = 1
    assert recall_curve(top, truth, [1, 2]).tolist() == [0.5, 1.0]


def test_duplicated_truth_items_count_once() -> None:
    # truth {1, 2} written as [1, 1, 2]: recall@2 of [1, 9] is 1/2, not 2/3
    top = np.array([[1, 9]])
    assert recall_at_k(top, [np.array([1, 1, 2])], 2).tolist() == [0.5]
    # IDCG from min(|{1, 2}|, 2) = 2 hits: 1 / (1 + 1/log2(3))
    assert ndcg_at_k(top, [np.array([1, 1, 2])], 2)[0] == pytest.approx(1 / (1 + L3))


def test_repeated_recommended_item_is_a_hit_once() -> None:
    # [1, 1, 2] vs {1, 2}: hits at ranks 1 and 3 only -> recall 1, AP = (1/1 + 2/3) / 2
    top = np.array([[1, 1, 2]])
    assert recall_at_k(top, [np.array([1, 2])], 3).tolist() == [1.0]
    assert map_at_k(top, [np.array([1, 2])], 3)[0] == pytest.approx((1 + 2 / 3) / 2)
    assert ndcg_at_k(top, [np.array([1, 2])], 3)[0] == pytest.approx((1 + L4) / (1 + L3))


def test_k_larger_than_the_list_uses_every_column_and_padding_never_hits() -> None:
    top = np.array([[0, 1, 2], [4, -1, -1]])
    truth = [np.array([2]), np.array([4, 3])]
    # user 0: item 2 at rank 3 -> recall 1, NDCG = (1/log2 4) / 1 = 0.5; user 1: 1 of 2 at rank 1
    assert recall_at_k(top, truth, 10).tolist() == [1.0, 0.5]
    assert ndcg_at_k(top, truth, 10)[0] == pytest.approx(L4)
    assert ndcg_at_k(top, truth, 10)[1] == pytest.approx(1 / (1 + L3))


def test_coverage_hand_computed() -> None:
    top = np.array([[0, 1], [0, 2], [3, -1]])
    # @1: {0, 3} of 10 items = 0.2; @2: {0, 1, 2, 3} = 0.4 (the -1 slot is not an item)
    assert coverage_at_k(top, 10, 1) == pytest.approx(0.2)
    assert coverage_at_k(top, 10, 2) == pytest.approx(0.4)
    with pytest.raises(ValueError):
        coverage_at_k(top, 3, 2)  # item 3 cannot exist in a 3-item catalogue


def test_recall_curve_hand_computed_and_consistent_with_recall_at_k() -> None:
    top = np.array([[3, 1, 4, 0, 2], [9, 8, 7, 6, 5]])
    truth = [np.array([1, 2]), np.array([9])]
    # user 0 recall @1..@6: 0, .5, .5, .5, 1, 1; user 1: 1 everywhere -> means below
    curve = recall_curve(top, truth, [1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(curve, [0.5, 0.75, 0.75, 0.75, 1.0, 1.0])
    for k, v in zip([1, 2, 3, 4, 5, 6], curve, strict=True):
        assert v == pytest.approx(np.nanmean(recall_at_k(top, truth, k)))


def test_bad_truth_is_refused() -> None:
    with pytest.raises(ValueError):
        recall_at_k(np.array([[0, 1]]), [np.array([0]), np.array([1])], 1)  # 2 truths, 1 row
    with pytest.raises(ValueError):
        recall_at_k(np.array([[0, 1]]), [np.array([-3])], 1)
    with pytest.raises(ValueError):
        recall_at_k(np.array([[0.0, 1.0]]), [np.array([1])], 1)
    with pytest.raises(ValueError):
        recall_at_k(np.array([[0, 1]]), [np.array([1])], 0)


def test_bootstrap_ci_contains_mean_and_ignores_nan() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.random(500), [np.nan] * 20])
    mean, low, high = bootstrap_ci(values, n_boot=500, seed=1)
    assert mean == pytest.approx(np.nanmean(values))
    assert low < mean < high
    # constant values cannot vary under resampling
    assert bootstrap_ci(np.full(50, 0.25)) == (0.25, 0.25, 0.25)
    assert all(math.isnan(x) for x in bootstrap_ci(np.array([np.nan, np.nan])))


def test_bootstrap_ci_width_matches_normal_theory_and_narrows_with_users() -> None:
    # Bernoulli(0.3): sd = sqrt(0.21); 95 % width ~ 2 * 1.96 * sd / sqrt(n)
    rng = np.random.default_rng(4)
    widths = {}
    for n in (200, 20_000):
        vals = (rng.random(n) < 0.3).astype(float)
        _, low, high = bootstrap_ci(vals, n_boot=1000, seed=0)
        widths[n] = high - low
        assert widths[n] == pytest.approx(2 * 1.96 * math.sqrt(0.21 / n), rel=0.15)
    assert widths[20_000] < widths[200] / 5  # 100x the users: about 10x narrower


def test_bootstrap_ci_is_deterministic_per_seed() -> None:
    vals = np.random.default_rng(5).random(300)
    assert bootstrap_ci(vals, seed=7) == bootstrap_ci(vals, seed=7)
    assert bootstrap_ci(vals, seed=7) != bootstrap_ci(vals, seed=8)
    with pytest.raises(ValueError):
        bootstrap_ci(vals, alpha=1.5)


def test_cold_start_degradation() -> None:
    # 1 - 0.08 / 0.10 = 0.2: cold users keep 80 % of the warm metric
    assert cold_start_degradation(0.08, 0.10) == pytest.approx(0.2)
    assert cold_start_degradation(0.12, 0.10) == pytest.approx(-0.2)  # cold better than warm
    assert math.isnan(cold_start_degradation(0.1, 0.0))
    # constant groups: 1 - 0.5 / 1.0 = 0.5 in every resample
    assert cold_start_degradation_ci(np.full(30, 0.5), np.full(40, 1.0)) == (0.5, 0.5, 0.5)
    rng = np.random.default_rng(6)
    point, low, high = cold_start_degradation_ci(rng.random(300) * 0.8, rng.random(400), seed=2)
    assert low < point < high
    assert all(math.isnan(x) for x in cold_start_degradation_ci(np.ones(3), np.zeros(3)))


def test_coverage_ci_brackets_the_value_and_resamples_rows() -> None:
    # two rows of disjoint items: a resample holds one row (prob 1/2: 2 of 4 items) or both (4 of 4)
    top = np.array([[0, 1], [2, 3]])
    value, low, high = bootstrap_coverage_ci(top, 4, 2, n_boot=400, seed=0)
    assert (value, low, high) == (1.0, 0.5, 1.0)
    assert bootstrap_coverage_ci(top, 4, 2, seed=3) == bootstrap_coverage_ci(top, 4, 2, seed=3)


def test_coverage_ci_equals_recounting_every_resample() -> None:
    # Oracle: replay the same row draws and recount distinct items the slow, obvious way. Items
    # 0..59 sit in 5..10 rows each so that "every row looked at so far was not drawn" is common
    # enough to exercise the whole search; n_boot=1 makes the interval the resample's own value.
    rng = np.random.default_rng(11)
    n_rows, n_items = 60, 70
    slots: list[list[int]] = [[] for _ in range(n_rows)]
    for item in range(60):
        for row in rng.choice(n_rows, size=5 + item % 6, replace=False):
            slots[row].append(item)
    width = max(len(r) for r in slots)
    top = np.array([r + [-1] * (width - len(r)) for r in slots])
    for seed in range(300):
        value, low, high = bootstrap_coverage_ci(top, n_items, width, n_boot=1, seed=seed)
        replay = np.random.default_rng(seed)
        drawn = np.zeros(n_rows, dtype=bool)
        drawn[replay.integers(0, n_rows, size=n_rows)] = True
        items = top[drawn]
        assert low == high == len(set(items[items >= 0].tolist())) / n_items, seed
    assert value == 60 / 70


def test_category_distribution_and_distances() -> None:
    top = np.array([[0, 1], [2, -1]])
    # filled slots hold items 0, 1, 2 -> categories 0, 0, 1 -> [2/3, 1/3, 0]
    np.testing.assert_allclose(category_distribution(top, np.array([0, 0, 1]), 3), [2 / 3, 1 / 3, 0])
    with pytest.raises(ValueError):
        category_distribution(top, np.array([0, 0, 5]), 3)
    assert np.isnan(category_distribution(np.array([[-1]]), np.array([0]), 2)).all()

    assert distribution_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == {
        "total_variation": 1.0,
        "jensen_shannon": 1.0,
    }
    same = distribution_distance(np.array([0.2, 0.8]), np.array([2.0, 8.0]))  # normalised first
    assert same["total_variation"] == pytest.approx(0) and same["jensen_shannon"] == pytest.approx(0)
    # p = [.5, .5], q = [1, 0]: TV = (.5 + .5) / 2 = .5; m = [.75, .25];
    # KL(p||m) = .5 log2(.5/.75) + .5 log2(.5/.25) = .2075; KL(q||m) = log2(1/.75) = .4150
    # JS = (.2075 + .4150) / 2 = .3113
    d = distribution_distance(np.array([0.5, 0.5]), np.array([1.0, 0.0]))
    assert d["total_variation"] == pytest.approx(0.5)
    assert d["jensen_shannon"] == pytest.approx(0.5 * (0.5 * math.log2(2 / 3) + 0.5 + math.log2(4 / 3)))
    assert d["jensen_shannon"] == pytest.approx(jensenshannon([0.5, 0.5], [1.0, 0.0], base=2) ** 2)
    with pytest.raises(ValueError):
        distribution_distance(np.array([-0.5, 1.5]), np.array([0.5, 0.5]))


def test_evaluate_ranking_hand_computed_and_json_ready() -> None:
    top = np.array([[0, 1, 2], [3, 4, 5], [0, 3, 1], [5, 4, 3]])
    truth = [np.array([1]), np.array([9]), np.array([0, 3]), np.array([], dtype=np.int64)]
    segments = {
        "warm_users": np.array([True, False, True, False]),
        "cold_users": np.array([False, True, False, True]),
    }
    item_category = np.array([0, 0, 1, 1, 1, 1, 0, 0, 0, 1])
    out = evaluate_ranking(
        top,
        truth,
        n_items=10,
        item_category=item_category,
        segments=segments,
        ks_curve=[1, 2, 3],
        n_boot=200,
    )
    json.dumps(out, allow_nan=False)  # strict JSON: no NaN anywhere
    assert (out["n_users"], out["n_users_evaluated"], out["n_users_skipped"]) == (4, 3, 1)
    # recall over users 0..2 (user 3 skipped): 1, 0, 1 -> 2/3
    assert out["recall_50"]["mean"] == pytest.approx(2 / 3)
    # NDCG@10: user 0 hit at rank 2 -> (1/log2 3)/1; user 1: 0; user 2 ranks 1, 2 -> 1
    assert out["ndcg_10"]["mean"] == pytest.approx((L3 + 0 + 1) / 3)
    # MAP@12: user 0 -> 1/2; user 1 -> 0; user 2 -> (1 + 1) / 2 = 1
    assert out["map_12"]["mean"] == pytest.approx(0.5)
    # evaluated rows 0..2 recommend {0, 1, 2, 3, 4, 5} of 10 items
    assert out["coverage_50"]["mean"] == pytest.approx(0.6)
    # curve @1: (0 + 0 + 1/2) / 3; @2: (1 + 0 + 1) / 3; @3 same
    np.testing.assert_allclose(out["recall_curve"]["recall"], [1 / 6, 2 / 3, 2 / 3])
    assert out["recall_curve"]["k"] == [1, 2, 3]
    warm, cold = out["segments"]["warm_users"], out["segments"]["cold_users"]
    assert warm["recall_50"]["mean"] == 1.0 and cold["recall_50"]["mean"] == 0.0
    assert (cold["n_users_evaluated"], cold["n_users_skipped"]) == (1, 1)
    # cold recall 0 vs warm 1 -> degradation 1 - 0/1 = 1
    assert out["cold_start_degradation"]["recall_50"]["mean"] == 1.0
    # recommended (rows 0..2, 9 slots): categories of 0,1,2,3,4,5,0,3,1 -> cat0 {0,1,0,1} = 4/9
    # purchased distinct items 1, 9, 0, 3 -> categories 0, 1, 0, 1 -> [.5, .5]
    mix = out["category_mix"]
    np.testing.assert_allclose(mix["recommended"], [4 / 9, 5 / 9])
    np.testing.assert_allclose(mix["purchased"], [0.5, 0.5])
    assert mix["total_variation"] == pytest.approx(1 / 18)
    for metric in ("recall_50", "ndcg_10", "map_12", "coverage_50"):
        ci = out[metric]
        assert ci["ci_low"] <= ci["mean"] <= ci["ci_high"]


def test_evaluate_ranking_with_nobody_to_evaluate_writes_nulls() -> None:
    out = evaluate_ranking(np.array([[0, 1]]), [np.array([], dtype=np.int64)], n_items=2, n_boot=10)
    json.dumps(out, allow_nan=False)
    assert out["n_users_evaluated"] == 0
    assert out["recall_50"] == {"mean": None, "ci_low": None, "ci_high": None}
    with pytest.raises(ValueError):
        evaluate_ranking(np.array([[0, 1]]), [np.array([1])], n_items=2, segments={"x": np.array([1, 0])})
