"""The stage's PNG plots (matplotlib, Agg backend: no display, same bytes for the same data)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dc003.io import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_TRAIN, _VAL = "train/epoch_loss", "val/loss"


def _figure(rows: int, width: float = 9.0, height: float = 3.4) -> tuple[Figure, Any]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height * rows), layout="constrained")
    axes = fig.subplots(rows, 1, squeeze=False)[:, 0]
    return fig, axes


def _save(fig: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # metadata without the matplotlib version / date: the PNG depends on the data alone
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})


def training_series(training: dict[str, Any]) -> dict[str, Any]:
    """Per-epoch points of all phases on one axis: epoch e of a phase ends at x = (epochs before) + e + 1.

    Each phase also gets a point at its start (x = epochs before) from its first training steps, so a
    one-epoch phase still draws a line. Returns ``x``/``train``/``val``/``recall`` lists and the
    ``boundaries`` (x where each phase starts, with its name).
    """
    xs_train: list[float] = []
    train: list[float] = []
    xs_val: list[float] = []
    val: list[float] = []
    recall: list[float] = []
    boundaries: list[tuple[float, str]] = []
    offset = 0.0
    for phase in training.get("phases", []):
        boundaries.append((offset, str(phase["phase"])))
        head = phase.get("step_loss_head")
        if head is not None:
            xs_train.append(offset)
            train.append(float(head))
        for j, epoch in enumerate(phase.get("epochs", [])):
            x = offset + j + 1
            if epoch.get(_TRAIN) is not None:
                xs_train.append(x)
                train.append(float(epoch[_TRAIN]))
            if epoch.get(_VAL) is not None:
                xs_val.append(x)
                val.append(float(epoch[_VAL]))
                recall.append(float(epoch.get("val/recall_50", float("nan"))))
        offset += max(len(phase.get("epochs", [])), 1)
    return {
        "x_train": xs_train,
        "train": train,
        "x_val": xs_val,
        "val": val,
        "recall": recall,
        "boundaries": boundaries,
        "end": offset,
    }


def plot_training_curves(training: dict[str, Any], path: Path) -> None:
    """Train and validation loss, and validation recall@50, of all four phases on one epoch axis."""
    s = training_series(training)
    fig, (loss_ax, rec_ax) = _figure(2)
    # each phase optimises its own objective (BPR, InfoNCE, composite, consistency): losses are
    # comparable within a phase, not across a boundary
    for phase_lines in _per_phase(s["x_train"], s["train"], s["boundaries"]):
        loss_ax.plot(*phase_lines, color="tab:blue", marker="o", ms=3)
    for phase_lines in _per_phase(s["x_val"], s["val"], s["boundaries"]):
        loss_ax.plot(*phase_lines, color="tab:orange", marker="s", ms=3)
    loss_ax.plot([], [], color="tab:blue", marker="o", label="train loss (epoch mean; start = first steps)")
    loss_ax.plot([], [], color="tab:orange", marker="s", label="validation loss")
    loss_ax.set_ylabel("loss (phase objective)")
    loss_ax.set_title("Training curves across the four phases")
    rec_ax.plot(s["x_val"], s["recall"], color="tab:green", marker="o", ms=3, label="validation recall@50")
    rec_ax.set_ylabel("recall@50")
    for ax in (loss_ax, rec_ax):
        for x, name in s["boundaries"]:
            ax.axvline(x, color="grey", ls="--", lw=0.8)
            ax.annotate(name, (x, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                        textcoords="offset points", fontsize=8, color="dimgrey")  # fmt: skip
        ax.set_xlabel("epoch (cumulative over phases)")
        ax.set_xlim(-0.2, s["end"] + 0.2)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left" if ax is rec_ax else "upper right", fontsize=8)
    _save(fig, path)


def _per_phase(
    xs: list[float], ys: list[float], boundaries: list[tuple[float, str]]
) -> list[tuple[list[float], list[float]]]:
    """Split a series at the phase starts so no line joins two phases' different objectives."""
    starts = [*[b for b, _ in boundaries][1:], float("inf")]
    out: list[tuple[list[float], list[float]]] = []
    lo = float("-inf")
    for hi in starts:
        seg = [(x, y) for x, y in zip(xs, ys, strict=True) if lo <= x < hi]
        if seg:
            out.append(([x for x, _ in seg], [y for _, y in seg]))
        lo = hi
    return out


def plot_recall_at_k(results: dict[str, Any], path: Path) -> None:
    """Recall@k for k = 1 .. max_k of every model, two-tower drawn on top."""
    curve = results["recall_at_k"]
    fig, (ax,) = _figure(1, height=4.5)
    for name, values in curve["models"].items():
        ys = [float("nan") if v is None else v for v in values]
        style: dict[str, Any] = {"lw": 2.4, "zorder": 3} if name == "two_tower" else {"lw": 1.3}
        if name == "oracle":
            style["ls"] = ":"
        ax.plot(curve["k"], ys, label=name, **style)
    ax.axvline(50, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("k (length of the recommendation list)")
    ax.set_ylabel("recall@k (mean over test users)")
    ax.set_title("Recall@k on the test split, full-catalogue ranking")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
