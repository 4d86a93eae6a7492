"""What a customer's purchases reveal of their taste, under the generator's own purchase model.

The generator draws a customer's taste as ``u = segment + individual``: the segment part is a function of
the observable features, the individual part ``e`` has independent coordinates of variance
``(1 - segment_weight) / latent_dim`` (:func:`dc003.data.synthetic_taste.user_vector_parts`). A fresh
purchase picks a department ``k`` with ``softmax_k(u . dept_k + log_mass[week, k])`` and then an article
``a`` inside it with ``softmax_a(u . item_a + log_weight[week, a])`` over the articles released by then.

Given the last ``max_history`` purchases a customer made before a cutoff (what the two-tower's history
encoder sees), the posterior of ``e`` is log-concave (Gaussian prior times softmax likelihoods), so its
mode is found by L-BFGS on all customers at once (the objective is a sum of per-customer terms), and its
curvature there gives a Laplace approximation ``N(mode, H^-1)``. :func:`posterior_taste` returns both;
drawing from it and averaging the purchase probabilities ranks by the posterior-expected propensity.

Simplifications (documented in the report): a repeat purchase (``repeat_rate``) and the satiation step's
redraws are scored as fresh choices, and the department is taken from the article.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dc003.data.synthetic_catalogue import Catalogue
from dc003.data.synthetic_config import SyntheticConfig
from dc003.data.synthetic_taste import Taste


@dataclass(frozen=True)
class TastePosterior:
    customers: np.ndarray  # (U,) generator customer indices
    mode: np.ndarray  # (U, d) posterior mode of the whole taste vector (segment + individual)
    chol_cov: np.ndarray  # (U, d, d) lower Cholesky factor of the Laplace covariance
    n_purchases: np.ndarray  # (U,) purchases the estimate used (<= max_history)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One draw of every customer's taste from the Laplace approximation, ``(U, d)`` float32."""
        z = rng.standard_normal(self.mode.shape)
        return (self.mode + np.einsum("ude,ue->ud", self.chol_cov, z)).astype(np.float32)


def last_purchases(
    customer: np.ndarray, day: np.ndarray, article: np.ndarray, before_day: int, max_history: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The last ``max_history`` rows of each customer strictly before ``before_day`` (ties in day keep
    the generator's row order, as the dataset's history slices do)."""
    keep = day < before_day
    c, d, a = customer[keep], day[keep], article[keep]
    order = np.lexsort((-np.arange(c.size), -d.astype(np.int64), c))
    c, d, a = c[order], d[order], a[order]
    rank = np.arange(c.size) - np.searchsorted(c, c)
    recent = rank < max_history
    return c[recent], d[recent], a[recent]


def posterior_taste(
    cfg: SyntheticConfig,
    cat: Catalogue,
    taste: Taste,
    segment: np.ndarray,
    history: tuple[np.ndarray, np.ndarray, np.ndarray],
    customers: np.ndarray,
    *,
    iterations: int = 200,
) -> TastePosterior:
    """Laplace posterior of ``customers``' tastes given ``history = (customer, block, article)`` rows
    (:func:`last_purchases`, days mapped to weeks) and the observable ``segment`` part (``(n, d)``, all
    customers). A customer without rows gets the prior: mode = segment, covariance = prior's."""
    import torch

    d = taste.user.shape[1]
    prior_var = (1.0 - cfg.segment_weight) / d
    h_cust, h_block, h_art = history
    pos = np.searchsorted(customers, h_cust)
    inside = (pos < customers.size) & (customers[np.minimum(pos, customers.size - 1)] == h_cust)
    row_user = torch.from_numpy(pos[inside].astype(np.int64))
    block = h_block[inside].astype(np.int64)
    art = h_art[inside].astype(np.int64)
    dept = cat.department[art].astype(np.int64)

    # rows grouped by department: each group's article softmax runs over that department's articles
    n_dept = taste.dept.shape[1]
    t = torch.float64
    groups = []
    for k in np.unique(dept):
        in_dept = np.flatnonzero(dept == k)
        members = np.flatnonzero(cat.department == k)
        logw = taste.log_weight[block[in_dept][:, None], members[None, :]].astype(np.float64)
        target = np.searchsorted(members, art[in_dept])
        groups.append((torch.from_numpy(in_dept), torch.from_numpy(taste.item[:, members].astype(np.float64)),
                       torch.from_numpy(logw), torch.from_numpy(target)))  # fmt: skip
    dept_w = torch.from_numpy(taste.dept.astype(np.float64))  # (d, n_dept)
    mass = torch.from_numpy(taste.log_mass.astype(np.float64))[torch.from_numpy(block)]  # (R, n_dept)
    dept_t = torch.from_numpy(dept)
    base = torch.from_numpy(segment[customers].astype(np.float64))
    e = torch.zeros(customers.size, d, dtype=t, requires_grad=True)

    def objective() -> torch.Tensor:
        u_rows = (base + e)[row_user]
        ll = torch.log_softmax(u_rows @ dept_w + mass, dim=1).gather(1, dept_t[:, None]).sum()
        for rows, vecs, logw, target in groups:
            log_pa = torch.log_softmax(u_rows[rows] @ vecs + logw, dim=1)
            ll = ll + log_pa.gather(1, target[:, None]).sum()
        return -ll + (e * e).sum() / (2 * prior_var)

    opt = torch.optim.LBFGS([e], lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12, history_size=20)  # fmt: skip

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    if row_user.numel():
        opt.step(closure)
    mode = (base + e.detach()).numpy()

    # Laplace: H = I / prior_var + sum over rows of Cov_p(department vectors) + Cov_p(article vectors)
    with torch.no_grad():
        u_rows = torch.from_numpy(mode)[row_user]
        hess = torch.eye(d, dtype=t).repeat(customers.size, 1, 1) / prior_var
        if row_user.numel():
            pd = torch.softmax(u_rows @ dept_w + mass, dim=1)
            per_user = torch.zeros(customers.size, n_dept, dtype=t).index_add_(0, row_user, pd)
            hess += torch.einsum("uk,dk,ek->ude", per_user, dept_w, dept_w)
            m = pd @ dept_w.T
            hess -= torch.zeros_like(hess).index_add_(0, row_user, torch.einsum("rd,re->rde", m, m))
            for rows, vecs, logw, _ in groups:
                pa = torch.softmax(u_rows[rows] @ vecs + logw, dim=1)
                outer = torch.einsum("rw,dw,ew->rde", pa, vecs, vecs)
                m = pa @ vecs.T
                outer -= torch.einsum("rd,re->rde", m, m)
                hess += torch.zeros_like(hess).index_add_(0, row_user[rows], outer)
        cov = torch.linalg.inv(hess)
        chol = torch.linalg.cholesky((cov + cov.transpose(1, 2)) / 2)
    counts = np.bincount(pos[inside], minlength=customers.size)
    return TastePosterior(customers=customers, mode=mode, chol_cov=chol.numpy(), n_purchases=counts)
