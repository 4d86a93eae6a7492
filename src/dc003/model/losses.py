"""Phase losses, apart from the towers. Scores are cosines of L2-normalised embeddings (the one similarity
used by training, evaluation and the FAISS index); a temperature divides them inside the losses.

Pure functions on embeddings / logits, so every one can be checked against a hand computation:

- :func:`bpr_loss` (phase 1): ``-log sigmoid(s_pos - s_neg - margin)``.
- :func:`smoothed_cross_entropy` (phases 2-3): cross-entropy over the unmasked candidates only, the
  smoothing mass spread over those candidates (a naive ``cross_entropy(label_smoothing=...)`` would put
  mass on ``-inf`` logits and return inf/NaN).
- :func:`popularity_corrected_logits`: ``s / T - w * log q`` for every negative (the positive column is
  left alone), the logQ correction for negatives sampled in proportion to popularity.
- :func:`accidental_hits`: a candidate that is the row's positive item or another positive of the same
  user in the batch is not a negative.
- :func:`category_alignment_loss` (phase 3): each user must score the category of its positive item
  highest among the batch's category centroids.
- :func:`consistency_loss` (phase 4): positive pairs only, ``(1 - cos) / T``.
- :func:`relational_distillation_loss` (phase 2, optional): the batch's item-item similarity structure
  should match a teacher's (collaborative item factors), row by row as softmax distributions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(
    pos: torch.Tensor, neg: torch.Tensor, margin: float, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """``pos`` (B,), ``neg`` (B, K) scores: mean of ``softplus(-(pos - neg - margin))`` over valid pairs."""
    per = F.softplus(-(pos[:, None] - neg - margin))
    if valid is None:
        return per.mean()
    w = valid.to(per.dtype)
    return (per * w).sum() / w.sum().clamp(min=1.0)


def popularity_corrected_logits(
    scores: torch.Tensor, temperature: float, log_q: torch.Tensor, weight: float, target: torch.Tensor
) -> torch.Tensor:
    """``scores / T - weight * log_q`` on every candidate except each row's target column.

    ``scores`` (B, C); ``log_q`` (C,) the log sampling probability of each candidate; ``target`` (B,).
    Subtracting ``log q`` raises rarely sampled negatives relative to often sampled (popular) ones, which
    in-batch sampling over-represents as negatives.
    """
    logits = scores / temperature
    if weight == 0.0:
        return logits
    correction = (weight * log_q).to(logits.dtype)
    rows = torch.arange(logits.shape[0], device=logits.device)
    # subtract from every column, then give each row's target column its correction back
    return (logits - correction).index_put((rows, target), correction[target], accumulate=True)


def smoothed_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, smoothing: float
) -> torch.Tensor:
    """Mean over rows of ``-sum_c q_c log p_c`` with ``p = softmax`` over valid candidates and
    ``q = (1 - smoothing) * onehot(target) + smoothing / n_valid`` on valid candidates (0 elsewhere).

    Computed as ``logsumexp_valid(l) - (1 - smoothing) * l_target - smoothing * mean_valid(l)`` (the same
    sum, without materialising log-probabilities of masked candidates, where ``0 * -inf`` would be NaN).
    """
    valid = valid.scatter(1, target[:, None], True)  # the positive is always a candidate
    lf = logits.float()
    lse = torch.logsumexp(lf.masked_fill(~valid, float("-inf")), dim=-1)
    l_target = lf.gather(1, target[:, None]).squeeze(1)
    mean_valid = torch.where(valid, lf, torch.zeros_like(lf)).sum(dim=-1) / valid.sum(dim=-1)
    return (lse - (1.0 - smoothing) * l_target - smoothing * mean_valid).mean()


def accidental_hits(
    row_users: torch.Tensor,
    row_items: torch.Tensor,
    candidate_items: torch.Tensor,
    target: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(B, C)`` bool: candidate ``c`` of row ``i`` is a positive of row ``i``'s user in this batch (its own
    positive item, or the positive of another row of the same user).

    ``row_users``/``row_items`` (B,) are the batch's positive pairs; ``candidate_items`` is (C,) shared by
    every row or (B, C) per row. The ``target`` column of each row (its own positive) is never a hit.
    """
    b = row_users.shape[0]
    cand = candidate_items if candidate_items.dim() == 2 else candidate_items[None, :]
    hits = (cand == row_items[:, None]).expand(b, cand.shape[1])
    # rows of the same user (few: mostly the items of one basket) mask each other's positives
    same = row_users[:, None] == row_users[None, :]
    same.fill_diagonal_(False)
    i, j = same.nonzero(as_tuple=True)
    if i.numel():
        other = (cand[i] if cand.shape[0] > 1 else cand) == row_items[j, None]
        extra = torch.zeros(hits.shape, dtype=torch.int32, device=hits.device).index_add_(0, i, other.int())
        hits = hits | (extra > 0)
    if target is not None:
        hits = hits.scatter(1, target[:, None], False)
    return hits


def category_alignment_loss(
    user: torch.Tensor, item: torch.Tensor, category: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Cross-entropy of ``user_i`` against the L2-normalised mean item embedding of each category present
    in the batch (``item``/``category`` are the batch's positives), the target being ``category_i``."""
    present, inverse = torch.unique(category, return_inverse=True)
    sums = torch.zeros(present.numel(), item.shape[1], dtype=item.dtype, device=item.device)
    sums = sums.index_add(0, inverse, item)
    centroids = F.normalize(sums, dim=-1)
    return F.cross_entropy(user @ centroids.T / temperature, inverse)


def consistency_loss(user: torch.Tensor, item: torch.Tensor, temperature: float) -> torch.Tensor:
    """Positive pairs only (no negatives): ``mean((1 - cos(user, item)) / T)``."""
    return ((1.0 - (user * item).sum(dim=-1)) / temperature).mean()


def relational_distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Mean over rows of ``KL(p_teacher || p_student)``, where row ``i``'s distributions are the softmax of
    its cosines to the batch's other rows (``/ temperature``, the row itself excluded).

    ``student`` (N, d) and ``teacher`` (N, k) are L2-normalised; only their similarity structure is
    compared, so the teacher may live in any space. Zero when the two similarity matrices agree.
    """
    n = student.shape[0]
    if n < 2:
        return student.sum() * 0.0
    self_pair = torch.eye(n, dtype=torch.bool, device=student.device)
    s = ((student.float() @ student.float().T) / temperature).masked_fill(self_pair, float("-inf"))
    t = ((teacher.float() @ teacher.float().T) / temperature).masked_fill(self_pair, float("-inf"))
    log_p_student = torch.log_softmax(s, dim=-1).masked_fill(self_pair, 0.0)
    p_teacher = torch.softmax(t, dim=-1)
    log_p_teacher = torch.log_softmax(t, dim=-1).masked_fill(self_pair, 0.0)
    return (p_teacher * (log_p_teacher - log_p_student)).sum(dim=-1).mean()
