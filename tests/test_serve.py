"""`dc003 serve` for real: a real redis-server, the service in its own processes (uvicorn, 2 workers) on two
tiny exports, real HTTP. Answers match the `Recommender`; the most active customers' embeddings come from
Redis under keys that carry the version; unknown customers take the cold path; bad input is a 4xx JSON
error; a repointed artifacts symlink and a new GTO prod version are both picked up with no failed request;
the service runs without Redis (and says so) and never loads torch. redis-server missing is a failure
(CI installs it with scripts/setup_system.sh), not a skip."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from dc003.deploy import layout, serving
from dc003.registry import dvc_md5, register_model
from dc003.serve.served import folder_signature, most_active
from tests.conftest import REPO
from tests.test_deploy import export_tiny
from tests.test_registry import ID, _dvc, _report, dvc_project, git

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("serve")]
TOP = 8  # serve.cache_top_users in these tests (the tiny data has 24 customers)
DC003 = str(Path(sys.executable).parent / "dc003")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cid(row: int) -> str:
    return f"{row:064x}"  # the tiny dataset's customer ids


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed: run scripts/setup_system.sh (CI's .ci/run does)")
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path_factory.mktemp("redis"))],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny exports of two different models (blue and green) on the same data."""
    return {name: export_tiny(tmp_path_factory.mktemp(name), seed)["arts"] for name, seed in
            (("blue", 0), ("green", 1))}  # fmt: skip


@pytest.fixture(scope="module")
def params_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    data["serve"].update(cache_top_users=TOP, reload_poll_s=0.2, max_batch=16, max_new_items=4)
    data["serve"]["max_body_bytes"] = 64 * 1024
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class Server:
    def __init__(self, cwd: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"serve-{self.port}.log"
        self.proc = subprocess.Popen(
            [DC003, "serve", "--port", str(self.port), *args],
            cwd=cwd,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        self.client = httpx.Client(base_url=self.url, timeout=30)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"dc003 serve exited: {self.log.read_text()}"
            try:
                if self.client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"dc003 serve did not answer in 120 s: {self.log.read_text()}")

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def worker_pids(self, workers: int) -> set[int]:
        pids: set[int] = set()
        for _ in range(200):  # a new connection each time: the kernel hands it to either worker
            pids.add(httpx.get(f"{self.url}/healthz", headers={"connection": "close"}).json()["pid"])
            if len(pids) == workers:
                break
        return pids


@pytest.fixture(scope="module")
def text_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder whose text cache holds the MiniLM ONNX graph (exported once, in a child process)."""
    from dc003.serve.text_encoder import ensure_encoder

    project = tmp_path_factory.mktemp("project")
    data = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    ensure_encoder(project / data["paths"]["text_cache_dir"])
    return project


@pytest.fixture(scope="module")
def blue_green(
    exports: dict[str, Path], redis_url: str, params_file: Path, text_cache: Path
) -> Iterator[dict[str, Any]]:
    """The service with Redis and 2 workers on `current` -> the blue export (a symlink, for blue/green)."""
    current = text_cache / "current"
    current.symlink_to(exports["blue"], target_is_directory=True)
    server = Server(
        text_cache, "--artifacts", str(current), "--workers", "2", "--params", str(params_file),
        "--redis-url", redis_url,
    )  # fmt: skip
    yield {"server": server, "current": current, "project": text_cache}
    server.stop()


def _key(arts: Path) -> str:
    return "md5-" + dvc_md5(arts).removesuffix(".dir")


def _rows_by_activity(arts: Path) -> tuple[list[int], list[int]]:
    lengths = serving.UserTable.load(arts / layout.USER_FEATURES).history_length
    chosen = most_active(lengths, TOP)
    return np.flatnonzero(chosen).tolist(), np.flatnonzero(~chosen).tolist()


def _same_ranking(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [i["article_id"] for i in got] == [i["article_id"] for i in want]
    np.testing.assert_allclose([i["score"] for i in got], [i["score"] for i in want], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ answers, cache, version keys


def test_answers_match_the_recommender_and_active_users_come_from_redis(
    blue_green: dict[str, Any], exports: dict[str, Path], redis_url: str
) -> None:
    import redis

    server, arts = blue_green["server"], exports["blue"]
    rec = serving.Recommender(arts)
    key = _key(arts)
    cached, uncached = _rows_by_activity(arts)
    client = redis.Redis.from_url(redis_url)
    # the first replica to load the version wrote every policy user's embedding, under the version key
    stored = sorted(k.decode() for k in client.scan_iter(f"dc003:{key}:u:*"))
    assert stored == sorted(f"dc003:{key}:u:{_cid(r)}" for r in cached)
    for row in cached[:3]:
        vec = np.frombuffer(client.get(f"dc003:{key}:u:{_cid(row)}"), dtype=np.float32)
        np.testing.assert_allclose(vec, rec.embed(_cid(row))[0][0], atol=1e-6)
    before = client.info("stats")["keyspace_hits"]
    for row in (cached[0], uncached[0]):
        body = server.client.get("/recommend", params={"customer_id": _cid(row), "k": 7}).json()
        assert body["version"] == key and body["k"] == 7 and body["cold_start"] is False
        assert body["embedding_source"] == ("redis" if row in cached else "tower")
        _same_ranking(body["items"], rec.recommend(_cid(row), 7).items)
    assert client.info("stats")["keyspace_hits"] == before + 1  # the active customer's vector, read once
    # a batch mixes all three paths, in request order
    ids = [_cid(uncached[1]), "never-seen", _cid(cached[1])]
    batch = server.client.post("/recommend", json={"customer_ids": ids, "k": 5}).json()
    assert [r["customer_id"] for r in batch["results"]] == ids
    assert [r["embedding_source"] for r in batch["results"]] == ["tower", "cold", "redis"]
    for r, want in zip(batch["results"], rec.recommend_many(ids, 5), strict=True):
        assert r["cold_start"] is want.cold_start
        _same_ranking(r["items"], want.items)


def test_unknown_customer_takes_the_cold_path(blue_green: dict[str, Any], exports: dict[str, Path]) -> None:
    res = blue_green["server"].client.get("/recommend", params={"customer_id": "nobody-we-know", "k": 4})
    assert res.status_code == 200
    body = res.json()
    assert body["cold_start"] is True and body["embedding_source"] == "cold" and len(body["items"]) == 4
    _same_ranking(body["items"], serving.Recommender(exports["blue"]).recommend("nobody-we-know", 4).items)


def test_version_reports_the_artifacts_and_redis_holds_the_index_metadata(
    blue_green: dict[str, Any], exports: dict[str, Path]
) -> None:
    arts = exports["blue"]
    body = blue_green["server"].client.get("/version").json()
    assert body["model_version"] == "unregistered"  # no registry in the project: the md5 names it
    assert body["artifacts_md5"] == dvc_md5(arts) and body["version_key"] == _key(arts)
    assert (
        body["contract_version"]
        == json.loads((arts / layout.MODEL_CONFIG).read_text())["model"]["contract_version"]
    )
    assert len(body["data_digest"]) == 64 and body["cached_users"] == TOP
    meta = body["redis_index_meta"]
    assert meta["artifacts_md5"] == dvc_md5(arts) and meta["items"] == str(body["items"])


def test_service_processes_never_load_torch(blue_green: dict[str, Any]) -> None:
    server = blue_green["server"]
    pids = server.worker_pids(2)
    assert len(pids) == 2  # two replicas answer
    for pid in pids:
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "libtorch" not in maps and "onnxruntime" in maps


# ------------------------------------------------------------------ new articles


def test_embed_items_is_minilm_then_the_item_tower(
    blue_green: dict[str, Any], exports: dict[str, Path]
) -> None:
    from dc003.text.embed import encoder_identity, load_encoder

    arts = exports["blue"]
    item = {
        "article_id": "new-1",
        "categorical": {"product_group_name": "Shoes", "color_group_name": "a colour nobody knows"},
        "numerical": {"price_normalized": 0.25},
        "text": {"product_name": "Canvas trainers", "detail_desc": "Low-top trainers in cotton canvas."},
    }
    res = blue_green["server"].client.post("/embed/items", json={"items": [item]})
    assert res.status_code == 200, res.text
    got = res.json()["items"][0]
    assert got["article_id"] == "new-1" and got["unknown_categorical"] == ["color_group_name"]
    # the reference: sentence-transformers (torch, here in the test) on the texts, then the item tower
    config = json.loads((arts / layout.MODEL_CONFIG).read_text())
    tower = config["model"]["item_tower"]
    vocab = json.loads((arts / layout.MAPPINGS).read_text())["categorical"]
    cat = np.array(
        [
            [
                vocab.get(c["name"], {}).get(item["categorical"].get(c["name"], ""), 0)
                for c in tower["categorical"]
            ]
        ]
    )
    num = np.array([[item["numerical"].get(n["name"], np.nan) for n in tower["numerical"]]], dtype=np.float32)
    texts = [item["text"][t["name"]] for t in tower["text"]]
    text = load_encoder(encoder_identity()[1], batch_size=4)(texts)[None]
    want = serving.embed_items(serving.session(arts / config["serving"]["item_tower"]), cat, num, text)
    np.testing.assert_allclose(got["embedding"], want[0], atol=1e-4)


# ------------------------------------------------------------------ bad input


JSON = {"content-type": "application/json"}
PRICE_NOT_A_NUMBER = {"json": {"items": [{"article_id": "n", "numerical": {"price_normalized": "?"}}]}}
BAD: list[tuple[str, str, dict[str, Any], int]] = [
    ("GET", "/recommend", {"params": {"k": 5}}, 422),  # no customer_id
    ("GET", "/recommend", {"params": {"customer_id": "", "k": 5}}, 422),
    ("GET", "/recommend", {"params": {"customer_id": "x" * 300}}, 422),
    ("GET", "/recommend", {"params": {"customer_id": "a", "k": 0}}, 422),
    ("GET", "/recommend", {"params": {"customer_id": "a", "k": -3}}, 422),
    ("GET", "/recommend", {"params": {"customer_id": "a", "k": 10**30}}, 422),
    ("GET", "/recommend", {"params": {"customer_id": "a", "k": "ten"}}, 422),
    ("GET", "/recommend", {"params": {"customer_id": "a", "k": "2.5"}}, 422),
    ("POST", "/recommend", {"json": {"k": 5}}, 422),  # no customer_ids
    ("POST", "/recommend", {"json": {"customer_ids": "abc"}}, 422),
    ("POST", "/recommend", {"json": {"customer_ids": [1, 2]}}, 422),
    ("POST", "/recommend", {"json": {"customer_ids": ["a"], "k": 5000}}, 422),
    ("POST", "/recommend", {"json": {"customer_ids": ["a"], "extra": 1}}, 422),
    ("POST", "/recommend", {"json": {"customer_ids": ["a"] * 17}}, 413),  # max_batch 16
    ("POST", "/recommend", {"content": b"x" * (65 * 1024), "headers": JSON}, 413),
    ("POST", "/recommend", {"content": b'\xff\xfe{"customer_ids": []}', "headers": JSON}, 422),  # not UTF-8
    ("POST", "/recommend", {"content": b'{"customer_ids": ["\xff"]}', "headers": JSON}, 400),  # bad UTF-8
    ("POST", "/recommend", {"content": b"{not json", "headers": JSON}, 422),
    ("POST", "/recommend", {"content": b"customer_ids=a", "headers": {"content-type": "text/plain"}}, 422),
    ("POST", "/recommend", {}, 422),  # no body
    ("POST", "/embed/items", {"json": {"items": [{"article_id": "n", "categorical": {"colour": "r"}}]}}, 422),
    ("POST", "/embed/items", {"json": {"items": [{"article_id": "n", "numerical": {"age": "?"}}]}}, 422),
    ("POST", "/embed/items", PRICE_NOT_A_NUMBER, 422),
    ("POST", "/embed/items", {"json": {"items": [{"article_id": "n", "text": {"product_name": 3}}]}}, 422),
    ("POST", "/embed/items", {"json": {"items": [{"article_id": str(i)} for i in range(5)]}}, 413),  # max 4
    ("POST", "/embed/items", {"json": {"items": [{"categorical": {}}]}}, 422),  # no article_id
    ("GET", "/nowhere", {}, 404),
    ("DELETE", "/recommend", {}, 405),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), BAD)
def test_bad_input_is_a_4xx_json_error(
    blue_green: dict[str, Any], method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    res = blue_green["server"].client.request(method, path, **kwargs)
    assert res.status_code == status, res.text
    body = res.json()
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in res.text and 'File "' not in res.text


def test_bad_input_names_the_field_and_rule(blue_green: dict[str, Any]) -> None:
    client = blue_green["server"].client
    assert client.get("/recommend", params={"customer_id": "a", "k": 0}).json()["error"] == (
        "k: must be between 1 and 1000 (got 0)"
    )
    assert client.get("/recommend", params={"k": 2}).json()["error"] == "customer_id: Field required"
    big = client.post("/recommend", json={"customer_ids": ["a"] * 17}).json()["error"]
    assert big == "customer_ids: 17 ids, at most 16 per request"


# ------------------------------------------------------------------ switching versions under load


class Load:
    """Requests in a loop from a thread: every status and the version each answer carries, in order."""

    def __init__(self, url: str, customer_id: str) -> None:
        self.answers: list[tuple[int, str | None]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, customer_id), daemon=True)
        self._thread.start()

    def _run(self, url: str, customer_id: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not self._stop.is_set():
                try:
                    res = client.get(  # a new connection each time, so both replicas answer
                        "/recommend",
                        params={"customer_id": customer_id, "k": 5},
                        headers={"connection": "close"},
                    )
                    self.answers.append((res.status_code, res.json().get("version")))
                except Exception as exc:
                    self.errors.append(repr(exc))

    def until(self, version: str, answers: int = 40, timeout: float = 60.0) -> None:
        """Run until the last ``answers`` answers all carry ``version``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tail = self.answers[-answers:]
            if len(tail) == answers and all(v == version for _, v in tail):
                break
            time.sleep(0.1)
        self._stop.set()
        self._thread.join(timeout=30)


def _check_switch(load: Load, old: str, new: str) -> None:
    assert not load.errors, load.errors[:3]
    assert all(status == 200 for status, _ in load.answers), [a for a in load.answers if a[0] != 200][:3]
    versions = [v for _, v in load.answers]
    assert versions[0] == old and versions[-1] == new, (versions[0], versions[-1])
    assert set(versions) == {old, new}
    # once both replicas switched, nothing answers with the old model again
    last_old = max(i for i, v in enumerate(versions) if v == old)
    assert all(v == new for v in versions[last_old + 1 :]) and len(versions) - last_old > 40


def test_repointed_symlink_switches_every_replica_without_a_failed_request(
    blue_green: dict[str, Any], exports: dict[str, Path], redis_url: str
) -> None:
    import redis

    server, current = blue_green["server"], blue_green["current"]
    blue, green = _key(exports["blue"]), _key(exports["green"])
    row = _rows_by_activity(exports["green"])[0][0]
    load = Load(server.url, _cid(row))
    time.sleep(0.5)
    tmp = current.with_name("current.next")
    tmp.symlink_to(exports["green"], target_is_directory=True)
    os.replace(tmp, current)  # atomic: blue/green
    load.until(green)
    _check_switch(load, blue, green)
    body = server.client.get("/recommend", params={"customer_id": _cid(row), "k": 6}).json()
    assert body["version"] == green and body["embedding_source"] == "redis"
    _same_ranking(body["items"], serving.Recommender(exports["green"]).recommend(_cid(row), 6).items)
    # the new version's vectors live under its own key; the blue ones were never read for green
    client = redis.Redis.from_url(redis_url)
    assert len(list(client.scan_iter(f"dc003:{green}:u:*"))) == TOP
    assert server.client.get("/version").json()["artifacts_md5"] == dvc_md5(exports["green"])
    assert folder_signature(current) != folder_signature(exports["blue"])


def test_a_new_prod_version_is_served_without_a_failed_request(
    exports: dict[str, Path], redis_url: str, params_file: Path, tmp_path: Path
) -> None:
    """Registry mode (no --artifacts): the newest GTO version in prod, fetched with `dvc artifacts get` when
    the checkout does not hold it; promoting another one switches."""
    root = dvc_project(tmp_path / "proj", tmp_path / "remote")

    def promote(arts: Path) -> str:
        shutil.rmtree(root / "artifacts", ignore_errors=True)
        shutil.copytree(arts, root / "artifacts")
        _dvc(root, "commit", "-f", "-q", "export")
        git(root, *ID, "add", "-A")
        git(root, *ID, "commit", "-qm", f"export {arts.parent.name}")
        decision = register_model(root, _report(True), contract_id="DC-003", metrics={})
        assert decision.promoted and decision.version is not None
        return decision.version

    first = promote(exports["blue"])
    _dvc(root, "push", "-q")
    shutil.rmtree(root / "artifacts")  # the checkout no longer holds v1.0.0: it is fetched from the remote
    server = Server(
        root, "--workers", "2", "--params", str(params_file), "--redis-url", redis_url, "--no-embed-items"
    )
    try:
        body = server.client.get("/version").json()
        assert body["model_version"] == first == "v1.0.0" and body["artifacts_md5"] == dvc_md5(
            exports["blue"]
        )
        assert Path(body["artifacts"]) == root / ".dvc" / "tmp" / "serve" / "v1.0.0"  # `dvc artifacts get`
        row = _rows_by_activity(exports["blue"])[0][0]
        load = Load(server.url, _cid(row))
        time.sleep(0.5)
        second = promote(exports["green"])
        load.until(second)
        _check_switch(load, first, second)
        body = server.client.get("/version").json()
        assert body["model_version"] == second == "v1.1.0" and body["artifacts_md5"] == dvc_md5(
            exports["green"]
        )
        import redis

        assert len(list(redis.Redis.from_url(redis_url).scan_iter(f"dc003:{second}:u:*"))) == TOP
    finally:
        server.stop()


# ------------------------------------------------------------------ without Redis, and start-up errors


def test_without_redis_the_service_says_so_and_answers_the_same(
    exports: dict[str, Path], params_file: Path, tmp_path: Path
) -> None:
    arts = exports["blue"]
    server = Server(tmp_path, "--artifacts", str(arts), "--params", str(params_file), "--no-embed-items",
                    env={"DC003_REDIS_URL": ""})  # fmt: skip
    try:
        health = server.client.get("/healthz").json()
        assert health["cache"] == "off"
        row = _rows_by_activity(arts)[0][0]
        body = server.client.get("/recommend", params={"customer_id": _cid(row), "k": 5}).json()
        assert body["embedding_source"] == "tower"
        _same_ranking(body["items"], serving.Recommender(arts).recommend(_cid(row), 5).items)
        assert server.client.post("/embed/items", json={"items": [{"article_id": "n"}]}).status_code == 503
    finally:
        server.stop()
    assert "serving without a cache" in server.log.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no two-tower version in stage prod"),  # the project has no registry and no --artifacts
        (["--artifacts", "nowhere"], "nowhere/model_config.json: missing: run the export stage first"),
        (["--redis-url", "redis://127.0.0.1:1/0"], "redis redis://127.0.0.1:1/0: not reachable"),
    ],
)
def test_start_up_errors_are_one_line(
    exports: dict[str, Path], params_file: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    if args and args[0] == "--redis-url":
        args = ["--artifacts", str(exports["blue"]), *args]
    elif not args:
        git(tmp_path, "init", "-q")
        git(tmp_path, *ID, "commit", "-q", "--allow-empty", "-m", "empty")
    run = subprocess.run(
        [DC003, "serve", "--params", str(params_file), "--no-embed-items", *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], run.stderr
