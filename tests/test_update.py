"""`dc003 update --since DATE` on tiny generated data, as a user runs it (a real process, real ONNX Runtime,
FAISS, git and GTO).

The project holds the pipeline's model (an untrained one: the update's behaviour, not its quality, is under
test) and the folder it served, exported from the dataset of three days earlier; the dataset is then
rebuilt from the full raw data, and the update runs on the train split's last three days. Checked: what the
served folder changes (exactly the users who bought in between; exactly the items whose serving features
changed, the item tower being frozen; new items get their own index rows), that the gates refuse
promotion on this model and no GTO tag appears, and that a bad --since is one clear error that leaves the
previous update as it was. Then the default params (update.since null): the stage records that nothing
was asked for, and its promotion stage refuses with that reason. A grown catalogue (new articles, one in
an unseen department, bought on the new day): the update serves them from the item tower, keeps the frozen
tower's rows; a lost article or a moved vocabulary is one clear error.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml

from dc003.exported import load_mappings, write_legacy

from .conftest import REPO, git

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("update")]

EARLIER = 3  # days between the served folder's data and the update's


def _served_numerical(root: Path, data: Any, config: Any) -> np.ndarray:
    """The item tower's numerical inputs as of the test cutoff as the export serves them (never-sold items'
    popularity as params serving imputes it)."""
    from dc003.params import load_sections
    from dc003.scoring.serving_score import served_item_numerical

    serving = load_sections(root / "params.yaml", ("serving",)).serving
    return served_item_numerical(data.features["test"].item_num, config, serving, data.never_sold("test"))


def _date(day: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


def _tiny_params(path: Path) -> dict[str, Any]:
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["data"]["scale"] = "tiny"
    params["evaluate"]["bootstrap_samples"] = 20
    # fp32 graphs only: the update's export is under test, not FP16 / int8 (tests/test_deploy.py)
    params["export"].update(fp16=False, int8=False, serving_user="fp32", serving_item="fp32")
    params["bench"].update(
        warmup=1, repetitions=3, batch_repetitions=2, encode_repetitions=2, retrieval_items=500
    )
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return params


def _build(raw: Path, out: Path) -> dict[str, Any]:
    from dc003.contracts import load_dc002, load_dc003
    from dc003.data.build import BuildSettings, build_dataset
    from dc003.params.full import load_params

    d = load_params(REPO / "params.yaml").dataset
    settings = BuildSettings(d.max_history, d.train_window_days, d.popularity_window_days)
    return build_dataset(raw, out, load_dc002(), load_dc003(), settings)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from dc003.contracts import load_dc002, load_dc003
    from dc003.data.raw import make_raw
    from dc003.deploy.package import run_export
    from dc003.evaluate.folds import truncate_raw
    from dc003.model import checkpoint
    from dc003.params.full import load_params
    from dc003.train.run import build_model

    root = tmp_path_factory.mktemp("update") / "project"
    root.mkdir()
    for rel in ("contracts", "gates"):
        shutil.copytree(REPO / rel, root / rel)
    shutil.copyfile(REPO / "dvc.yaml", root / "dvc.yaml")
    _tiny_params(root / "params.yaml")
    params = load_params(root / "params.yaml")
    make_raw(root / "data/raw", params.data, params.seed, load_dc002())
    new = _build(root / "data/raw", root / "data/dataset")["splits"]
    last = int(new["last_day"])
    truncate_raw(root / "data/raw", root / "prev/raw", last - EARLIER)
    prev = _build(root / "prev/raw", root / "prev/dataset")["splits"]
    # the text vectors are item-level constants (the catalogue is the same in both builds)
    n_items = pl.scan_parquet(root / "data/dataset/items.parquet").select(pl.len()).collect().item()
    text = root / "data/text_embed"
    text.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.save(text / "item_text.npy", rng.standard_normal((n_items, 2, 384)).astype(np.float32))

    dc003, dc002 = load_dc003(root / "contracts/dc003.yaml"), load_dc002(root / "contracts/dc002.yaml")
    model, _ = build_model(params.seed, params.model, root / "prev/dataset", text, dc003, dc002)
    warm = root / "checkpoints/best_model.pt"
    warm.parent.mkdir()
    checkpoint.save_model(warm, model)
    run_export(
        params.export, params.serving, warm, root / "prev/dataset", text, root / "artifacts",
        root / "reports/export_report.json", root / "contracts/dc003.yaml",
    )  # fmt: skip
    git(root, "init", "-q", "-b", "main")
    git(root, "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "tiny")

    train_end = int(new["splits"]["train"]["last_day"])
    since = _date(train_end - EARLIER + 1)
    proc = _cli(root, "update", "--since", since)
    return {
        "root": root,
        "proc": proc,
        "since": since,
        "last": last,
        "train_end": train_end,
        "cutoffs": (int(prev["splits"]["test"]["cutoff_day"]), int(new["splits"]["test"]["cutoff_day"])),
        "report": json.loads((root / "updates/update.json").read_text(encoding="utf-8")),
    }


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO), env.get("PYTHONPATH", "")])
    return env


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    code = "from dc003.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=root, env=_env(), capture_output=True, text=True
    )


def _stage(root: Path, module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=root, env=_env(), capture_output=True, text=True
    )


def test_the_update_trains_on_the_new_days_from_the_pipeline_checkpoint(project: dict[str, Any]) -> None:
    report = project["report"]
    assert report["requested"] and report["since"] == project["since"]
    assert report["warm_start"]["source"] == "checkpoint"  # no GTO version at stage prod
    assert report["warm_start"]["path"].endswith("checkpoints/best_model.pt")
    first = dt.date.fromisoformat(project["since"])
    days = [_date(d) for d in report["training"]["days"]]
    assert days[0] >= first.isoformat() and days[-1] == _date(project["train_end"])
    inter = pl.read_parquet(project["root"] / "data/dataset/interactions.parquet")
    expected = inter.filter(
        (pl.col("split") == "train") & (pl.col("day") >= (first - dt.date(1970, 1, 1)).days)
    )
    assert report["training"]["examples"] == expected.height


def test_exactly_the_users_who_bought_since_the_served_folder_get_new_history_rows(
    project: dict[str, Any],
) -> None:
    root = project["root"]
    old, new = (
        np.load(root / "artifacts/user_features.npz"),
        np.load(root / "updates/artifacts/user_features.npz"),
    )
    changed = np.flatnonzero(
        (old["history"] != new["history"]).any(axis=1) | (old["history_length"] != new["history_length"])
    )
    lo, hi = project["cutoffs"]
    inter = pl.read_parquet(root / "data/dataset/interactions.parquet")
    buyers = inter.filter((pl.col("day") >= lo) & (pl.col("day") < hi))["user_idx"].unique().sort().to_numpy()
    assert buyers.size > 0
    np.testing.assert_array_equal(changed, buyers)
    assert project["report"]["changes"]["users_history_changed"] == buyers.size


def test_with_the_item_tower_frozen_an_index_row_changes_exactly_where_its_features_did(
    project: dict[str, Any],
) -> None:
    from dc003.model import checkpoint
    from dc003.text.embed import load_item_text
    from dc003.train.data import load_training_data

    root = project["root"]
    model, _ = checkpoint.load_model(root / "checkpoints/best_model.pt")
    text = load_item_text(root / "data/text_embed")
    data = {
        name: load_training_data(root / path, text, model.config)
        for name, path in (("old", "prev/dataset"), ("new", "data/dataset"))
    }
    cats = {name: d.features["test"].item_cat for name, d in data.items()}
    nums = {name: _served_numerical(root, d, model.config) for name, d in data.items()}  # as served
    moved = (cats["old"] != cats["new"]).any(axis=1) | ~np.all(
        np.isclose(nums["old"], nums["new"], rtol=0, atol=0, equal_nan=True), axis=1
    )
    old = np.load(root / "artifacts/item_embeddings.npy")
    new = np.load(root / "updates/artifacts/item_embeddings.npy")
    changed = (old != new).any(axis=1)
    np.testing.assert_array_equal(changed, moved)
    assert project["report"]["changes"]["items_embedding_changed"] == int(changed.sum())


def test_items_first_sold_in_the_new_days_are_retrievable_from_their_new_rows(
    project: dict[str, Any],
) -> None:
    import faiss

    root = project["root"]
    lo, hi = project["cutoffs"]
    inter = pl.read_parquet(root / "data/dataset/interactions.parquet")
    first = inter.group_by("item_idx").agg(pl.col("day").min().alias("first"))
    fresh = first.filter((pl.col("first") >= lo) & (pl.col("first") < hi))["item_idx"].sort().to_numpy()
    assert fresh.size > 0, "the tiny data has no item first sold in the new days"
    old, new = (
        faiss.read_index(str(root / "artifacts/items.faiss")),
        faiss.read_index(str(root / "updates/artifacts/items.faiss")),
    )
    emb = np.load(root / "updates/artifacts/item_embeddings.npy")
    for item in fresh:
        row = new.reconstruct(int(item))
        assert not np.array_equal(row, old.reconstruct(int(item)))  # upserted: features and prior moved
        np.testing.assert_allclose(row[: emb.shape[1]], emb[item], rtol=0, atol=1e-6)
        query = np.zeros((1, new.d), dtype=np.float32)
        query[0, : emb.shape[1]] = emb[item]
        _, ids = new.search(query, 1)
        assert ids[0, 0] == item


def test_failing_gates_refuse_promotion_exit_1_and_create_no_tag(project: dict[str, Any]) -> None:
    proc, root = project["proc"], project["root"]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "promotion refused" in proc.stderr and "no GTO tag created" in proc.stderr
    assert not project["report"]["gates"]["passed"] and project["report"]["gates"]["failing"]
    gates = json.loads((root / "updates/metrics/gates.json").read_text(encoding="utf-8"))
    assert gates["passed"] is False
    assert git(root, "tag", "-l") == ""


NEW_ARTICLES = ("0999999001", "0999999002", "0999999003")  # after every tiny id: appended rows
UNSEEN = "Zz Brand New Department"  # a department no article had: index 0 (unknown) in the vocabulary


def _grow_raw(raw: Path, day: str) -> str:
    """Three new articles (copies of the one holding the most frequent value of each unsaturated item
    categorical, so the vocabularies keep their order; the last in an unseen department) and their
    purchases on ``day``; returns the customer who bought the first."""
    arts = pl.read_csv(raw / "articles.csv", infer_schema=False)
    template = arts
    for col in ("product_group_name", "colour_group_name", "garment_group_name", "index_group_name"):
        template = template.filter(pl.col(col) == arts[col].mode().sort()[0])
    assert template.height, "no tiny article holds every most frequent value"
    section = arts["section_name"].mode().sort()[0]
    new = pl.concat(
        [
            template.head(1).with_columns(
                article_id=pl.lit(a), product_code=pl.lit(a[:7]), section_name=pl.lit(section)
            )
            for a in NEW_ARTICLES
        ]
    ).with_columns(
        department_name=pl.when(pl.col("article_id") == NEW_ARTICLES[-1])
        .then(pl.lit(UNSEEN))
        .otherwise(pl.col("department_name"))
    )
    pl.concat([arts, new]).write_csv(raw / "articles.csv")
    tx = pl.read_csv(raw / "transactions_train.csv", infer_schema=False)
    bought = tx.filter(pl.col("t_dat") == day).head(len(NEW_ARTICLES))
    bought = bought.with_columns(article_id=pl.Series(NEW_ARTICLES[: bought.height]))
    pl.concat([tx, bought]).write_csv(raw / "transactions_train.csv")
    return str(bought["customer_id"][0])


def _dataset_params(root: Path, folder: str) -> str:
    """``<folder>/params.yaml``: the project's params reading the dataset ``<folder>/dataset``."""
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    params["paths"]["dataset_dir"] = f"{folder}/dataset"
    (root / folder / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    return f"{folder}/params.yaml"


def _vocab_values(dataset: Path) -> dict[str, list[Any]]:
    vocab = json.loads((dataset / "vocab.json").read_text(encoding="utf-8"))
    return {name: entry["values"] for name, entry in vocab.items()}


@pytest.fixture(scope="module")
def grown(project: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The project's data with three new articles bought on the train split's last day; the same
    pipeline model (built for the old catalogue) and served folder; the same update."""
    src = project["root"]
    reference = np.load(src / "updates/artifacts/item_embeddings.npy")  # the same update, old catalogue
    root = tmp_path_factory.mktemp("grown") / "project"
    shutil.copytree(src, root, ignore=shutil.ignore_patterns("updates", "resume", "empty"))
    buyer = _grow_raw(root / "data/raw", _date(project["train_end"]))
    old_vocab = _vocab_values(root / "data/dataset")
    shutil.rmtree(root / "data/dataset")
    _build(root / "data/raw", root / "data/dataset")
    assert _vocab_values(root / "data/dataset") == old_vocab  # value -> index as the model learnt it
    text = np.load(root / "data/text_embed/item_text.npy")
    extra = np.random.default_rng(1).standard_normal((len(NEW_ARTICLES), *text.shape[1:]))
    np.save(root / "data/text_embed/item_text.npy", np.concatenate([text, extra.astype(np.float32)]))
    proc = _cli(root, "update", "--since", project["since"])
    assert (root / "updates/update.json").is_file(), proc.stderr
    return {
        "root": root,
        "source": src,
        "proc": proc,
        "buyer": buyer,
        "reference": reference,
        "n_old": text.shape[0],
    }


def test_a_grown_catalogue_is_served_with_its_new_articles_embedded_by_the_item_tower(
    grown: dict[str, Any],
) -> None:
    import faiss
    import torch

    from dc003.deploy.serving import embed_items, session
    from dc003.model import checkpoint
    from dc003.text.embed import load_item_text
    from dc003.train.data import load_training_data

    root, arts = grown["root"], grown["root"] / "updates/artifacts"
    assert "promotion refused" in grown["proc"].stderr  # the untrained model fails the gates, as above
    mappings = load_mappings(arts / "embedding_mappings.json")
    n_new = grown["n_old"] + len(NEW_ARTICLES)
    assert len(mappings.articles) == n_new
    rows = mappings.articles.lookup(NEW_ARTICLES)
    np.testing.assert_array_equal(rows, np.arange(grown["n_old"], n_new))
    model, _ = checkpoint.load_model(root / "updates/checkpoints/best_model.pt")
    assert model.config.n_items == n_new
    # the unseen department is the unknown bucket (0) in the dataset and in the model's vocabulary
    assert UNSEEN not in mappings.categorical["department_name"]
    data = load_training_data(root / "data/dataset", load_item_text(root / "data/text_embed"), model.config)
    feats = data.features["test"]
    names = [c.name for c in model.config.item_tower.categorical]
    assert feats.item_cat[rows[-1], names.index("department_name")] == 0
    # every index row, the new articles' included, is the exported item tower's embedding of the item's
    # features (ONNX Runtime)
    served = _served_numerical(root, data, model.config)
    onnx = embed_items(session(arts / "item_tower.onnx"), feats.item_cat, served, data.item_text)
    index = faiss.read_index(str(arts / "items.faiss"))
    assert index.ntotal == n_new
    for row in range(n_new):
        np.testing.assert_allclose(index.reconstruct(row)[: onnx.shape[1]], onnx[row], rtol=0, atol=1e-5)
    # the item tower was frozen: its weights are the warm start's, and an old article whose features did
    # not change keeps the row the update on the old catalogue gave it
    warm, _ = checkpoint.load_model(root / "checkpoints/best_model.pt")
    for key, value in warm.item_tower.state_dict().items():
        if key.endswith("num_batches_tracked"):  # counts steps; momentum 0 keeps the statistics
            continue
        assert torch.equal(value, model.item_tower.state_dict()[key]), key
    n_old, src = grown["n_old"], grown["source"]
    before = load_training_data(
        src / "data/dataset", load_item_text(src / "data/text_embed"), warm.config
    ).features["test"]
    same = (before.item_cat == feats.item_cat[:n_old]).all(axis=1) & np.all(
        np.isclose(before.item_num, feats.item_num[:n_old], rtol=0, atol=0, equal_nan=True), axis=1
    )
    assert same.sum() > n_old // 2
    emb = np.load(arts / "item_embeddings.npy")
    np.testing.assert_array_equal(emb[:n_old][same], grown["reference"][same])
    # the buyer's served history holds the new article, most recent first
    users = np.load(arts / "user_features.npz")
    (user,) = mappings.customers.lookup([grown["buyer"]])
    assert rows[0] in users["history"][user, : users["history_length"][user]]


def test_a_warm_start_exported_in_the_previous_json_format_grows_the_same_model(
    grown: dict[str, Any], tmp_path: Path
) -> None:
    """An older registry version's export has every id in embedding_mappings.json (format 1): the catalogue
    check reads it and grows the same model as from the format-2 header and id tables."""
    import torch

    from dc003.model import checkpoint
    from dc003.train.update import fit_catalogue

    root = grown["root"]
    new_format = root / "artifacts/embedding_mappings.json"
    m = load_mappings(new_format)
    legacy = tmp_path / "embedding_mappings.json"
    write_legacy(legacy, m.categorical, {"articles": m.articles, "customers": m.customers}, "format 1")
    assert not (tmp_path / "embedding_mappings.npz").exists()
    grown_models = []
    for mappings in (new_format, legacy):
        model, _ = checkpoint.load_model(root / "checkpoints/best_model.pt")
        grown_models.append(fit_catalogue(model, root / "data/dataset", root / "x.pt", mappings, seed=0))
    new, old = (g.state_dict() for g in grown_models)
    assert grown_models[0].config.n_items == grown["n_old"] + len(NEW_ARTICLES)
    assert new.keys() == old.keys() and all(torch.equal(new[k], old[k]) for k in new)


def test_the_registry_warm_start_reads_either_mappings_format_through_dvc(tmp_path: Path) -> None:
    """``_registry_mappings`` at a tagged commit: a DVC-tracked artifacts folder exported in format 1
    (one JSON) and in format 2 (header + id tables) give the same lookups."""
    from dc003.exported import IdTable, write_mappings
    from dc003.params.full import load_params
    from dc003.update.run import _registry_mappings

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True, env=_env())
    customers = [f"{u:064x}" for u in range(30)]
    tables = {"articles": IdTable.build(["0108029001", "x-2"], [0, 1]),
              "customers": IdTable.build(customers, np.arange(30))}  # fmt: skip
    paths = load_params(REPO / "params.yaml").paths
    commits = {}
    for fmt, write in (("1", write_legacy), ("2", write_mappings)):
        arts = repo / paths.artifacts_dir
        shutil.rmtree(arts, ignore_errors=True)
        arts.mkdir()
        write(arts / "embedding_mappings.json", {"product_group_name": {"Shoes": 1}}, tables, f"format {fmt}")
        subprocess.run([sys.executable, "-m", "dvc", "add", "-q", paths.artifacts_dir], cwd=repo, check=True,
                       env=_env())  # fmt: skip
        git(repo, "add", "-A")
        git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", f"format {fmt}")
        commits[fmt] = git(repo, "rev-parse", "HEAD").strip()
    shutil.rmtree(repo / paths.artifacts_dir)  # only DVC's cache holds them now
    rel = f"{paths.checkpoints_dir}/best_model.pt"
    for fmt, commit in commits.items():
        scratch = tmp_path / f"scratch{fmt}"
        scratch.mkdir()
        found = _registry_mappings(repo, rel, paths, commit, scratch)
        assert found is not None, fmt
        m = load_mappings(Path(found))
        assert m.format == int(fmt)
        assert sorted(p.name for p in scratch.iterdir()) == ["embedding_mappings.json"] + (
            ["embedding_mappings.npz"] if fmt == "2" else []
        )
        assert m.customers.lookup([customers[7], "nobody"]).tolist() == [7, -1]
        assert m.articles.lookup(["x-2"]).tolist() == [1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("lost", "items.parquet: 399 articles, but the warm start"),
        ("vocab", "vocab.json: color_group_name: value -> index differs from the warm start's"),
    ],
)
def test_a_lost_article_or_a_moved_vocabulary_is_one_clear_error_and_the_update_stays(
    grown: dict[str, Any], change: str, message: str
) -> None:
    root = grown["root"]
    before = _digest(root / "updates")
    raw = root / change / "raw"
    shutil.copytree(root / "prev/raw", raw)
    arts = pl.read_csv(raw / "articles.csv", infer_schema=False)
    if change == "lost":
        sold = set(pl.read_csv(raw / "transactions_train.csv", infer_schema=False)["article_id"].to_list())
        gone = next(a for a in arts["article_id"].to_list() if a not in sold)  # never sold: no orphans
        arts = arts.filter(pl.col("article_id") != gone)
    else:  # the most frequent colour renamed: every colour's index moves
        top = arts["colour_group_name"].mode().sort()[0]
        arts = arts.with_columns(pl.col("colour_group_name").replace(top, "Zz Renamed"))
    arts.write_csv(raw / "articles.csv")
    _build(raw, root / change / "dataset")
    since = _date(int(pl.read_parquet(root / change / "dataset/interactions.parquet")["day"].min()))
    proc = _cli(root, "update", "--since", since, "--params", _dataset_params(root, change))
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and f"{change}/dataset/{message}" in errors[0], proc.stderr
    assert "needs the full pipeline" in errors[0]
    assert _digest(root / "updates") == before


def _digest(folder: Path) -> str:
    from dc003.registry import dvc_md5

    return dvc_md5(folder)


@pytest.mark.parametrize(
    ("since", "message"),
    [
        ("2020-13-45", "not a date (YYYY-MM-DD)"),
        ("after", "after the data"),
        ("test", "in the test split, held out"),
        ("empty", "no transactions in"),
    ],
)
def test_a_bad_since_is_one_clear_error_and_the_previous_update_stays(
    project: dict[str, Any], since: str, message: str
) -> None:
    root = project["root"]
    before = _digest(root / "updates")
    args = ["update", "--since"]
    if since == "after":
        args.append(_date(project["last"] + 5))
    elif since == "test":
        args.append(_date(project["last"] - 1))
    elif since == "empty":
        # the same data without the train split's last day: an update from that day has nothing to train on
        raw = pl.read_csv(root / "data/raw/transactions_train.csv", infer_schema=False)
        cut = root / "empty/raw"
        cut.mkdir(parents=True, exist_ok=True)
        for f in (root / "data/raw").iterdir():
            if f.name != "transactions_train.csv":
                shutil.copyfile(f, cut / f.name)
        raw.filter(pl.col("t_dat") != _date(project["train_end"])).write_csv(cut / "transactions_train.csv")
        _build(cut, root / "empty/dataset")
        args += [_date(project["train_end"]), "--params", _dataset_params(root, "empty")]
    else:
        args.append(since)
    proc = _cli(root, *args)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: --since") and message in errors[0], proc.stderr
    assert _digest(root / "updates") == before


def test_with_since_null_the_stage_records_no_update_and_promotion_refuses_with_that_reason(
    project: dict[str, Any],
) -> None:
    root = project["root"]
    proc = _stage(root, "pipeline.update")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((root / "updates/update.json").read_text(encoding="utf-8"))["requested"] is False
    assert sorted(p.name for p in (root / "updates").iterdir()) == ["update.json"]
    decision_file = root / "metrics/update_promotion.json"
    proc = _stage(root, "pipeline.update_promote", "--decision", str(decision_file))
    assert proc.returncode == 0, proc.stderr
    decision = json.loads(decision_file.read_text(encoding="utf-8"))
    assert decision["promoted"] is False and "update.since is null" in decision["message"]
    assert git(root, "tag", "-l") == ""
