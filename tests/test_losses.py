"""Each loss against a value computed by hand on a tiny example; masking, smoothing and the popularity
correction's direction."""

from __future__ import annotations

import math

import pytest
import torch

from dc003.model.losses import (
    accidental_hits,
    bpr_loss,
    category_alignment_loss,
    consistency_loss,
    popularity_corrected_logits,
    smoothed_cross_entropy,
)


def test_bpr_with_margin_matches_hand_value() -> None:
    pos = torch.tensor([0.8, 0.2])
    neg = torch.tensor([[0.1], [0.5]])
    # -log sigmoid(x) = log(1 + exp(-x)) with x = pos - neg - margin
    expected = (math.log1p(math.exp(-(0.8 - 0.1 - 0.1))) + math.log1p(math.exp(-(0.2 - 0.5 - 0.1)))) / 2
    assert bpr_loss(pos, neg, 0.1).item() == pytest.approx(expected, rel=1e-6)


def test_bpr_ignores_invalid_pairs() -> None:
    pos = torch.tensor([0.8, 0.2])
    neg = torch.tensor([[0.1, 9.0], [0.5, 9.0]])
    valid = torch.tensor([[True, False], [True, False]])
    assert bpr_loss(pos, neg, 0.1, valid).item() == pytest.approx(bpr_loss(pos, neg[:, :1], 0.1).item())
    # the invalid column would dominate if it counted
    assert bpr_loss(pos, neg, 0.1).item() > bpr_loss(pos, neg, 0.1, valid).item() + 1


def test_smoothed_cross_entropy_hand_value() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    target = torch.tensor([0])
    valid = torch.ones(1, 3, dtype=torch.bool)
    z = math.exp(2) + math.exp(1) + 1
    logp = [2 - math.log(z), 1 - math.log(z), -math.log(z)]
    eps = 0.1
    q = [1 - eps + eps / 3, eps / 3, eps / 3]
    expected = -sum(qi * lp for qi, lp in zip(q, logp, strict=True))
    assert smoothed_cross_entropy(logits, target, valid, eps).item() == pytest.approx(expected, rel=1e-6)
    # without smoothing it is plain cross-entropy
    plain = torch.nn.functional.cross_entropy(logits, target).item()
    assert smoothed_cross_entropy(logits, target, valid, 0.0).item() == pytest.approx(plain, rel=1e-6)


def test_smoothing_mass_goes_to_unmasked_candidates_only() -> None:
    logits = torch.tensor([[2.0, 1.0, 5.0]], requires_grad=True)
    target = torch.tensor([0])
    valid = torch.tensor([[True, True, False]])  # candidate 2 is masked (an accidental hit)
    loss = smoothed_cross_entropy(logits, target, valid, 0.2)
    z = math.exp(2) + math.exp(1)
    logp = [2 - math.log(z), 1 - math.log(z)]
    expected = -((0.8 + 0.1) * logp[0] + 0.1 * logp[1])
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert logits.grad[0, 2].item() == 0.0
    # the naive way returns inf/NaN on the masked logit: the reason for smoothed_cross_entropy
    naive = torch.nn.functional.cross_entropy(
        logits.detach().masked_fill(~valid, float("-inf")), target, label_smoothing=0.2
    )
    assert not math.isfinite(naive.item())


def test_popularity_correction_hand_value_and_target_untouched() -> None:
    scores = torch.tensor([[0.5, 0.2, 0.1]])
    log_q = torch.log(torch.tensor([0.5, 0.4, 0.1]))
    out = popularity_corrected_logits(scores, 0.1, log_q, 0.5, torch.tensor([0]))
    expected = [5.0, 2.0 - 0.5 * math.log(0.4), 1.0 - 0.5 * math.log(0.1)]
    assert out[0].tolist() == pytest.approx(expected, rel=1e-6)


def test_popularity_correction_direction() -> None:
    """Two negatives with the same score: the rarer one (lower sampling probability) gets the higher
    corrected logit, so popular items are penalised less for being sampled often as negatives."""
    scores = torch.tensor([[0.9, 0.3, 0.3]])
    log_q = torch.log(torch.tensor([0.2, 0.3, 0.01]))
    target = torch.tensor([0])
    out = popularity_corrected_logits(scores, 0.08, log_q, 0.5, target)
    assert out[0, 2] > out[0, 1]
    valid = torch.ones(1, 3, dtype=torch.bool)
    with_corr = smoothed_cross_entropy(out, target, valid, 0.0)
    without = smoothed_cross_entropy(
        popularity_corrected_logits(scores, 0.08, log_q, 0.0, target), target, valid, 0.0
    )
    assert with_corr > without  # subtracting log q (< 0) raises every negative's logit


def test_accidental_hits_masks_same_item_and_same_user_positives() -> None:
    users = torch.tensor([7, 7, 8])
    items = torch.tensor([10, 11, 10])
    cands = torch.tensor([10, 11, 10, 12, 11])  # in-batch positives + two shared negatives
    hits = accidental_hits(users, items, cands, target=torch.arange(3))
    expected = torch.tensor(
        [
            # row 0 (user 7, item 10): col 1 is user 7's other positive, col 2 its own item, col 4 = item 11
            [False, True, True, False, True],
            # row 1 (user 7, item 11): col 0 and col 2 = item 10 (user 7's other positive), col 4 own item
            [True, False, True, False, True],
            # row 2 (user 8, item 10): only its own item again in col 0
            [True, False, False, False, False],
        ]
    )
    assert torch.equal(hits, expected)


def test_accidental_hits_per_row_candidates() -> None:
    users = torch.tensor([1, 1, 2])
    items = torch.tensor([5, 6, 7])
    per_row = torch.tensor([[6, 9], [5, 5], [6, 7]])
    hits = accidental_hits(users, items, per_row)
    assert hits.tolist() == [[True, False], [True, True], [False, True]]


def test_category_alignment_hand_value() -> None:
    user = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    item = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    category = torch.tensor([3, 3, 5])
    centroid3 = torch.tensor([1.6, 0.8]) / math.hypot(1.6, 0.8)
    centroid5 = torch.tensor([0.0, 1.0])
    t = 0.1
    # users 0, 1 paired with items 0, 1 (both category 3)
    logits = torch.stack([user @ centroid3, user @ centroid5], dim=1) / t
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 0])).item()
    got = category_alignment_loss(user, item[:2], category[:2], t).item()
    # with only category 3 present, the single-class cross-entropy is 0
    assert got == pytest.approx(0.0, abs=1e-6)
    got3 = category_alignment_loss(torch.cat([user, user[:1]]), item, category, t).item()
    logits3 = (
        torch.stack([torch.cat([user, user[:1]]) @ centroid3, torch.cat([user, user[:1]]) @ centroid5], 1) / t
    )
    assert got3 == pytest.approx(
        torch.nn.functional.cross_entropy(logits3, torch.tensor([0, 0, 1])).item(), rel=1e-5
    )
    assert expected > 0


def test_consistency_loss_hand_value() -> None:
    user = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    item = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    assert consistency_loss(user, item, 0.05).item() == pytest.approx(((1 - 0.6) / 0.05 + 0.0) / 2, rel=1e-6)


def test_relational_distillation_hand_value_and_zero_at_agreement() -> None:
    from dc003.model.losses import relational_distillation_loss

    norm = torch.nn.functional.normalize
    teacher = norm(torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]), dim=1)
    assert relational_distillation_loss(teacher, teacher, 0.1).item() == pytest.approx(0.0, abs=1e-6)
    # only the similarity structure counts: a rotated teacher with extra dimensions is the same teacher
    rotated = torch.cat([teacher @ torch.tensor([[0.0, 1.0], [-1.0, 0.0]]), torch.zeros(3, 3)], dim=1)
    assert relational_distillation_loss(teacher, rotated, 0.1).item() == pytest.approx(0.0, abs=1e-6)

    student = norm(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]]), dim=1).requires_grad_()

    def rows(x: torch.Tensor) -> list[dict[int, float]]:
        sim = (x @ x.T / 0.1).tolist()
        out = []
        for i in range(3):
            z = sum(math.exp(sim[i][j]) for j in range(3) if j != i)
            out.append({j: math.exp(sim[i][j]) / z for j in range(3) if j != i})
        return out

    p_t, p_s = rows(teacher), rows(student.detach())
    expected = sum(p_t[i][j] * math.log(p_t[i][j] / p_s[i][j]) for i in range(3) for j in p_t[i]) / 3
    value = relational_distillation_loss(student, teacher, 0.1)
    assert expected > 0 and value.item() == pytest.approx(expected, rel=1e-5)
    value.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert relational_distillation_loss(teacher[:1], teacher[:1], 0.1).item() == 0.0  # one row: nothing
