"""Running an incremental update (the module doc of :mod:`dc003.update` says what, in order)."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dc003.deploy.layout import MAPPINGS
from dc003.errors import Dc003Error
from dc003.io import read_json, write_json, write_text
from dc003.update.promote import DC002, DC003, REPORT, UPDATE_ARTIFACT, Layout, gates_report

if TYPE_CHECKING:
    from dc003.params import SectionView
    from dc003.params.common import PathsParams
    from dc003.params.full import Params


def parse_since(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise Dc003Error(f"--since {text!r}: not a date (YYYY-MM-DD)") from None


def since_day(dataset_dir: Path, since: dt.date) -> int:
    """``since`` as a day number, checked against the dataset's splits and interactions."""
    import pyarrow.parquet as pq

    from dc003.data.splits import EPOCH, SplitPlan, day_to_date

    file = dataset_dir / "splits.json"
    if not file.is_file():
        raise Dc003Error(f"{file}: missing: build the dataset first (`dvc repro dataset`)")
    plan = SplitPlan.from_json(read_json(file))
    day = (since - EPOCH).days
    last_train = plan.ends["train"]
    if day > plan.last_day:
        raise Dc003Error(
            f"--since {since}: after the data: {file} ends on {day_to_date(plan.last_day)} "
            f"(the latest day the update can train on is {day_to_date(last_train)})"
        )
    if day > last_train:
        split = "val" if day < plan.test_start else "test"
        raise Dc003Error(
            f"--since {since}: in the {split} split, held out for the evaluation and the gates ({file}); the "
            f"update trains on the train split, whose last day is {day_to_date(last_train)}"
        )
    inter = pq.read_table(dataset_dir / "interactions.parquet", columns=["day", "split"])
    days = inter.column("day").to_numpy()
    train = np.asarray(inter.column("split").to_numpy(zero_copy_only=False)) == "train"
    if not bool(((days >= day) & train).any()):
        raise Dc003Error(
            f"--since {since}: no transactions in {dataset_dir / 'interactions.parquet'} from "
            f"{since} to {day_to_date(last_train)} (the train split's last day): nothing to update on"
        )
    return day


# ---------------------------------------------------------------------------------------------- warm start


def warm_start(root: Path, paths: PathsParams, scratch: Path) -> tuple[Path, dict[str, Any]]:
    """The model the update starts from, and a record of which: the newest ``prod`` GTO version of the
    update's artifact or the pipeline's (its ``best_model.pt`` read through DVC at the tagged commit, into
    ``scratch``), else ``<checkpoints_dir>/best_model.pt``."""
    from dc003.registry import MODEL_ARTIFACT, PROD_STAGE, versions

    candidates: list[tuple[str, dict[str, Any], str]] = []
    registry_note = ""
    try:
        for name, rel in (
            (UPDATE_ARTIFACT, f"{paths.update_dir}/{paths.checkpoints_dir}/best_model.pt"),
            (MODEL_ARTIFACT, f"{paths.checkpoints_dir}/best_model.pt"),
        ):
            candidates += [(name, v, rel) for v in versions(root, name) if PROD_STAGE in v["stages"]]
    except Dc003Error as exc:  # no git repository or no commit: no registry to read
        registry_note = str(exc)
    if candidates:
        name, version, rel = max(candidates, key=lambda c: c[1]["created_at"])
        import dvc.api

        target = scratch / "warm_start.pt"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with dvc.api.open(rel, repo=str(root), rev=version["commit"], mode="rb") as src:
                target.write_bytes(src.read())
        except Exception as exc:  # DVC reports a missing cache / remote object in several types
            raise Dc003Error(
                f"{version['tag']}: its {rel} cannot be read back through DVC at {version['commit'][:10]} "
                f"({type(exc).__name__}: {exc}); `dvc pull` it, or pass --warm-start"
            ) from None
        return target, {
            "source": "registry",
            "artifact": name,
            "version": version["version"],
            "tag": version["tag"],
            "commit": version["commit"],
            "path": rel,
            "mappings": _registry_mappings(root, rel, paths, version["commit"], scratch),
        }
    path = root / paths.checkpoints_dir / "best_model.pt"
    if not path.is_file():
        raise Dc003Error(
            f"{path}: missing and no GTO version is at stage prod: nothing to warm-start from; run the "
            "pipeline first (`dvc repro`)"
        )
    return path, {
        "source": "checkpoint",
        "path": str(path),
        "mappings": str(root / paths.artifacts_dir / MAPPINGS),
        "why": registry_note or "no GTO version of two-tower or two-tower-update is at stage prod",
    }


def _registry_mappings(root: Path, rel: str, paths: PathsParams, commit: str, scratch: Path) -> str | None:
    """The ``embedding_mappings.json`` exported beside the checkpoint ``rel`` at ``commit`` (its catalogue
    and vocabularies) and, in format 2, the id tables it names, read through DVC into ``scratch``;
    ``None`` where they cannot be read."""
    import dvc.api

    from dc003.exported import load_mappings

    folder = f"{rel.removesuffix(f'{paths.checkpoints_dir}/best_model.pt')}{paths.artifacts_dir}"

    def fetch(name: str) -> None:
        with (
            dvc.api.open(f"{folder}/{name}", repo=str(root), rev=commit, mode="rb") as src,
            open(scratch / name, "wb") as dst,
        ):
            shutil.copyfileobj(src, dst, 1 << 22)

    target = scratch / MAPPINGS
    try:
        fetch(MAPPINGS)
        ids = load_mappings(target).ids_path  # None: format 1, the ids are in the JSON
        if ids is not None:
            fetch(ids.name)
    except Exception:  # DVC reports a missing file / cache object in several types: no mappings known
        return None
    return str(target)


def _history_dir(warm: Path) -> Path | None:
    """The phase directory whose history.json describes ``warm`` (a pipeline or an update checkpoint)."""
    for sub in ("phases/update", "phases/phase_4"):
        if (warm.parent / sub / "history.json").is_file():
            return warm.parent / sub
    return None


# ---------------------------------------------------------------------------------------------- the update


def skip(update_dir: Path) -> dict[str, Any]:
    """``update.since`` is null: record that no update was asked for (deterministic: DVC caches it)."""
    from dc003.data.dirs import atomic_dir

    report = {"requested": False, "note": "params update.since is null: no update asked for"}
    with atomic_dir(update_dir) as tmp:
        write_json(tmp / REPORT, report)
    return report


def run_update(
    root: Path,
    params: SectionView | Params,
    since: dt.date,
    *,
    warm: tuple[Path, dict[str, Any]] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The whole update into ``<root>/<paths.update_dir>`` (see the module doc); returns ``update.json``."""
    from dc003.data.dirs import atomic_dir
    from dc003.train.run import PhasePaths
    from dc003.train.update import run_update_training

    paths = params.paths
    dataset, text = root / paths.dataset_dir, root / paths.text_embed_dir
    first = since_day(dataset, since)  # before anything is written
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    with atomic_dir(root / paths.update_dir) as tmp:
        out = Layout(tmp, paths)
        warm_path, warm_record = warm or warm_start(root, paths, tmp / ".warm")
        seconds["warm_start"] = round(time.perf_counter() - started, 3)
        mark = time.perf_counter()
        phase = PhasePaths(
            dataset_dir=dataset,
            text_dir=text,
            out_dir=out.phase_dir,
            live_dir=out.live_dir,
            resume_dir=root / paths.resume_dir / "update",
            input_dir=_history_dir(warm_path),
        )
        run = run_update_training(
            params.seed,
            params.update,
            phase,
            warm_start=warm_path,
            since_day=first,
            dc002_path=root / DC002,
            warm_mappings=Path(warm_record["mappings"]) if warm_record.get("mappings") else None,
            progress=progress,
        )
        _write_training_reports(run, out, root)
        seconds["train"] = round(time.perf_counter() - mark, 3)
        shutil.rmtree(tmp / ".warm", ignore_errors=True)
        previous = _previous_artifacts(root, paths)
        measured = _measure(params, out, dataset, text, root, seconds)
        report = {
            "requested": True,
            "since": since.isoformat(),
            "warm_start": warm_record,
            "training": run.summary["update"],
            "final": run.summary["final"],
            "changes": _changes(previous, out.artifacts),
            "gates": measured,
            "seconds": {**seconds, "total": round(time.perf_counter() - started, 3)},
        }
        write_json(tmp / REPORT, report)
    return report


def _write_training_reports(run: Any, out: Layout, root: Path) -> None:
    """The contract's checkpoint files and the training reports, as phase 4 writes them."""
    from dc003.contracts import load_dc003
    from dc003.train.report import architecture_report, training_metrics, write_contract_checkpoints

    contract = load_dc003(root / DC003)
    history = list(read_json(out.phase_dir / "history.json"))
    out.checkpoints.mkdir(parents=True, exist_ok=True)
    out.reports.mkdir(parents=True, exist_ok=True)
    write_contract_checkpoints(run.model, run.result.optimizer_state, contract, out.checkpoints)
    arch = architecture_report(run.model, run.data, history, contract)
    write_json(out.reports / "architecture_validation.json", arch)
    write_json(out.metrics / "training_metrics.json", training_metrics(history))


def _measure(
    params: SectionView | Params,
    out: Layout,
    dataset: Path,
    text: Path,
    root: Path,
    seconds: dict[str, float],
) -> dict[str, Any]:
    """Evaluate, export, bench: the stages' own functions on the update's checkpoint; then the gates."""
    from dc003.deploy.bench import run_bench, write_bench
    from dc003.deploy.package import run_export
    from dc003.evaluate.run import EvaluatePaths, run_evaluate
    from dc003.gates.render import to_markdown

    checkpoint = out.checkpoints / "best_model.pt"
    mark = time.perf_counter()
    run_evaluate(
        params.seed,
        params.evaluate,
        params.serving,
        EvaluatePaths(
            checkpoint=checkpoint,
            dataset_dir=dataset,
            text_dir=text,
            training_metrics=out.metrics / "training_metrics.json",
            metrics_dir=out.metrics,
            plots_dir=out.plots,
            reports_dir=out.reports,
        ),
        dc003_path=root / DC003,
    )
    seconds["evaluate"] = round(time.perf_counter() - mark, 3)
    mark = time.perf_counter()
    run_export(
        params.export,
        params.serving,
        checkpoint,
        dataset,
        text,
        out.artifacts,
        out.reports / "export_report.json",
        root / DC003,
    )
    seconds["export"] = round(time.perf_counter() - mark, 3)
    mark = time.perf_counter()
    bench = run_bench(params.bench, out.artifacts, out.checkpoints, dataset, text)
    write_bench(bench, out.metrics / "bench.json")
    seconds["bench"] = round(time.perf_counter() - mark, 3)
    report = gates_report(root, out)
    write_json(out.metrics / "gates.json", report.model_dump(mode="json"))
    write_text(out.reports / "gates.md", to_markdown(report))
    return {"passed": report.passed, "counts": report.counts, "failing": [g.name for g in report.failed()]}


# ---------------------------------------------------------------------------------------------- what changed


def _previous_artifacts(root: Path, paths: PathsParams) -> Path | None:
    """The served folder the update replaces: the previous update's, else the pipeline's export."""
    for folder in (root / paths.update_dir / paths.artifacts_dir, root / paths.artifacts_dir):
        if (folder / "item_embeddings.npy").is_file():
            return folder
    return None


def _changes(previous: Path | None, current: Path) -> dict[str, Any]:
    """Which served rows the update changed against the folder it replaces: users whose history (what
    the user tower reads) changed, items whose embedding (index row) changed."""
    from dc003.deploy import layout

    if previous is None:
        return {"previous": None}
    old_u, new_u = np.load(previous / layout.USER_FEATURES), np.load(current / layout.USER_FEATURES)
    old_i, new_i = np.load(previous / layout.ITEM_EMBEDDINGS), np.load(current / layout.ITEM_EMBEDDINGS)
    if old_i.shape != new_i.shape or old_u["history"].shape != new_u["history"].shape:
        return {"previous": str(previous), "comparable": False}
    history = (old_u["history"] != new_u["history"]).any(axis=1) | (
        old_u["history_length"] != new_u["history_length"]
    )
    items = (old_i != new_i).any(axis=1)
    return {
        "previous": str(previous),
        "comparable": True,
        "users": int(history.size),
        "users_history_changed": int(history.sum()),
        "items": int(items.size),
        "items_embedding_changed": int(items.sum()),
    }


def summary_lines(report: dict[str, Any]) -> list[str]:
    """What ``dc003 update`` and the update stage print."""
    if not report.get("requested"):
        return [f"update: {report.get('note', 'nothing asked for')}"]
    t, w, g, c = report["training"], report["warm_start"], report["gates"], report["changes"]
    final, nan = report["final"], float("nan")
    lines = [
        f"update: warm start {w['source']}: {w.get('tag') or w['path']}",
        f"update: {t['examples']} interactions of {t['users']} users, days {t['days']}, trainable "
        f"{t['trainable']}; val recall@50 {final.get('val/recall_50', nan):.4f}, "
        f"ndcg@10 {final.get('val/ndcg_10', nan):.4f}",
    ]
    if c.get("comparable"):
        lines.append(
            f"update: against {c['previous']}: {c['users_history_changed']} of {c['users']} users' "
            f"histories and {c['items_embedding_changed']} of {c['items']} item index rows changed"
        )
    lines.append(f"update: seconds {report['seconds']}")
    failing = ", ".join(g["failing"])
    verdict = "every gate passes" if g["passed"] else f"{len(g['failing'])} gate(s) fail: {failing}"
    lines.append(f"update: gates {g['counts']}: {verdict}")
    return lines
