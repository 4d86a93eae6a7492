"""The hidden preference model: taste vectors for customers, departments and articles, and the
weekly popularity (lifecycle) weight of every article. Everything here is derived from observable
attributes plus seeded noise, so a two-tower model can learn most of it from the files."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dc003.data.synthetic_catalogue import N_PRICE_LEVELS, Catalogue
from dc003.data.synthetic_config import Calendar, SyntheticConfig
from dc003.data.synthetic_customers import Customers
from dc003.data.synthetic_vocab import Taxonomy

_CALIBRATION_USERS = 4000  # customers sampled to calibrate popularity-neutral biases
_CALIBRATION_STEPS = 6
_AGE_ANCHORS = np.array([16, 20, 24, 28, 33, 38, 44, 50, 57, 65, 75, 99])


def products(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in float64: every taste score that a draw, a stored weight or the oracle depends on.

    OpenBLAS picks its kernels by CPU (and ``OPENBLAS_CORETYPE``); float32 kernels disagree in the last
    bits (~1e-7), enough to move a few draws in a million, so another machine wrote other files. float64
    kernels disagree by ~1e-16: a draw (a uniform against a cumulative weight) or a float32 rounding
    then moves with probability ~1e-15 / ~1e-9 per value, so the files are the same bytes everywhere
    (tests/test_synthetic_determinism.py varies the kernels and thread counts)."""
    return np.asarray(a, dtype=np.float64) @ np.asarray(b, dtype=np.float64)


@dataclass(frozen=True)
class Taste:
    user: np.ndarray  # (n_customers, d) float32 taste vectors
    dept: np.ndarray  # (d, n_dept) float32, already divided by dept_temperature
    item: np.ndarray  # (d, n_articles) float32, already divided by item_temperature
    log_weight: np.ndarray  # (n_blocks, n_articles) float32 log popularity x lifecycle; -inf before release
    log_mass: np.ndarray  # (n_blocks, n_dept) float32 log of the department's summed weight


def _table(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """n random directions of unit expected norm."""
    return rng.normal(0.0, 1.0 / np.sqrt(d), size=(n, d))


def _unit_rms(x: np.ndarray) -> np.ndarray:
    """Scale rows so their mean squared norm is 1 (keeps relative lengths, fixes the logit scale)."""
    rms = float(np.sqrt(np.mean(np.sum(x * x, axis=1)))) or 1.0
    return x / rms


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Unit-length rows: with sharp choices a longer vector would be liked by everyone, so length
    would act as hidden global popularity; articles differ in direction only (cosine taste)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def item_vectors(
    cfg: SyntheticConfig, tax: Taxonomy, cat: Catalogue, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Department vectors (what decides the department choice) and article vectors (what decides
    the article inside a department), each a weighted sum of attribute embeddings."""
    d = cfg.latent_dim
    section = tax.section_of_department
    index = tax.index_of_section[section]
    dept = (
        1.0 * _table(len(tax.index_group_names), d, rng)[tax.index_group_of_index[index]]
        + 0.5 * _table(len(tax.index_names), d, rng)[index]
        + 0.7 * _table(len(tax.section_names), d, rng)[section]
        + 0.6 * _table(len(tax.garment_group_names), d, rng)[tax.topic_garment_group[tax.topic_of_department]]
        + 0.3 * _table(tax.n_departments, d, rng)
    )
    styles = _table(len(tax.style_names), d, rng)
    item = (
        0.5 * _table(len(tax.product_group_names), d, rng)[tax.group_of_type[cat.product_type]]
        + 0.6 * _table(len(tax.product_type_names), d, rng)[cat.product_type]
        + 0.7 * _table(len(tax.colour_names), d, rng)[cat.colour]
        + 0.25 * _table(len(tax.colour_value_names), d, rng)[cat.colour_value]
        + 0.3 * _table(len(tax.graphical_names), d, rng)[cat.graphical]
        + 0.9 * styles[cat.style1]
        + 0.45 * styles[cat.style2]
        + 0.5 * _table(N_PRICE_LEVELS, d, rng)[cat.price_level]
        + 0.35 * _table(cat.n, d, rng)
    )
    return _unit_rows(dept), _unit_rows(item)


def user_vectors(cfg: SyntheticConfig, cust: Customers, rng: np.random.Generator) -> np.ndarray:
    """Segment part from observable features (age smoothly, club status, news habit, channel habit)
    plus an individual part that only the purchase history reveals."""
    segment, individual = user_vector_parts(cfg, cust, rng)
    return (segment + individual).astype(np.float32)


def user_vector_parts(
    cfg: SyntheticConfig, cust: Customers, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The two parts of :func:`user_vectors`, already weighted: ``(segment, individual)`` (float64)."""
    d = cfg.latent_dim
    anchors = _table(len(_AGE_ANCHORS), d, rng)
    pos = np.interp(cust.age, _AGE_ANCHORS, np.arange(len(_AGE_ANCHORS)))
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(_AGE_ANCHORS) - 1)
    frac = (pos - lo)[:, None]
    age_part = (1 - frac) * anchors[lo] + frac * anchors[hi]
    # news habit as the customer has it: the "None" spelling and an empty field mean NONE
    news = np.where(cust.news >= 3, 0, cust.news)
    segment = (
        1.0 * age_part
        + 0.4 * _table(4, d, rng)[cust.club]
        + 0.4 * _table(3, d, rng)[news]
        + 0.3 * _table(2, d, rng)[cust.online.astype(np.int64)]
    )
    # centred: a direction every customer shares would make some articles globally popular, and
    # global popularity is popularity_weight's job alone
    segment -= segment.mean(axis=0)
    individual = _table(cust.n, d, rng)
    w = cfg.segment_weight
    return np.sqrt(w) * _unit_rms(segment), np.sqrt(1 - w) * _unit_rms(individual)


def lifecycle_log_weight(cfg: SyntheticConfig, cal: Calendar, cat: Catalogue) -> np.ndarray:
    """log weight per (block, article): rise to a peak, exponential decay to a floor, a novelty bonus
    in the first weeks, times base popularity; -inf before release."""
    age = np.arange(cal.n_blocks, dtype=np.float64)[:, None] - cat.release_block[None, :]
    with np.errstate(divide="ignore"):
        logw = np.log(lifecycle_shape(cfg, age))
        logw = logw + cfg.popularity_weight * cfg.popularity_spread * cat.log_popularity[None, :]
    logw = logw + cfg.novelty_boost * novelty(cfg, age)
    return np.where(age >= 0, logw, -np.inf).astype(np.float32)


def lifecycle_shape(cfg: SyntheticConfig, age: np.ndarray) -> np.ndarray:
    """An article's weight ``age`` weeks after release as a share of its peak (before the novelty bonus)."""
    rise = np.clip((age + 1) / cfg.lifecycle_peak_weeks, 0.0, 1.0)
    decay = np.exp(-np.maximum(0.0, age - cfg.lifecycle_peak_weeks) / cfg.lifecycle_decay_weeks)
    return cfg.lifecycle_floor + (1 - cfg.lifecycle_floor) * rise * decay


def novelty(cfg: SyntheticConfig, age: np.ndarray) -> np.ndarray:
    """Whether ``age`` falls in the first ``novelty_weeks`` after release (the log-weight bonus applies)."""
    return (age >= 0) & (age < cfg.novelty_weeks)


def build_taste(
    cfg: SyntheticConfig,
    cal: Calendar,
    tax: Taxonomy,
    cat: Catalogue,
    cust: Customers,
    rng: np.random.Generator,
) -> Taste:
    dept, item = item_vectors(cfg, tax, cat, rng)
    user = user_vectors(cfg, cust, rng)
    dept_t = np.ascontiguousarray(dept.T / cfg.dept_temperature, dtype=np.float32)
    item_t = np.ascontiguousarray(item.T / cfg.item_temperature, dtype=np.float32)
    sample = user[rng.choice(cust.n, min(cust.n, _CALIBRATION_USERS), replace=False)]
    logw = lifecycle_log_weight(cfg, cal, cat) + _item_bias(sample, item_t)[None, :]
    mass = np.zeros((cal.n_blocks, tax.n_departments))
    for b in range(cal.n_blocks):
        mass[b] = np.bincount(
            cat.department, weights=np.exp(logw[b].astype(np.float64)), minlength=tax.n_departments
        )
    with np.errstate(divide="ignore"):
        log_mass = np.log(mass) + _dept_bias(sample, dept_t, mass.mean(axis=0))
    return Taste(user=user, dept=dept_t, item=item_t, log_weight=logw, log_mass=log_mass.astype(np.float32))


def _item_bias(sample: np.ndarray, item_t: np.ndarray) -> np.ndarray:
    """-log of an article's mean taste appeal over customers. Directions that many customers share
    would otherwise make articles popular with everybody; this way global popularity comes only
    from the popularity, lifecycle and novelty knobs, and taste decides who buys what."""
    out = np.empty(item_t.shape[1], dtype=np.float32)
    for i0 in range(0, item_t.shape[1], 8192):
        logits = products(sample, item_t[:, i0 : i0 + 8192])
        top = logits.max(axis=0)
        out[i0 : i0 + 8192] = -(top + np.log(np.mean(np.exp(logits - top), axis=0)))
    return out


def _dept_bias(sample: np.ndarray, dept_t: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Per-department offsets such that, over the customer population, departments are chosen in
    proportion to their assortment mass (a few fixed-point steps), whatever taste clusters exist."""
    bias = np.zeros(dept_t.shape[1])
    stocked = mass > 0
    target = mass[stocked] / mass.sum()
    base = products(sample, dept_t)
    with np.errstate(divide="ignore"):
        log_mass = np.log(mass)
    for _ in range(_CALIBRATION_STEPS):
        logits = base + log_mass + bias
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        share = (p / p.sum(axis=1, keepdims=True)).mean(axis=0)
        bias[stocked] += np.log(target / np.maximum(share[stocked], 1e-300))
    return bias
