"""Load test of `dc003 serve` with locust (headless) on 127.0.0.1 -> reports/serve_load.json.

Starts a real redis-server (a free port, in memory) and two `dc003 serve --workers W` on ``--artifacts``,
one with the Redis cache and one without, then runs locust against each in turn at 1, 8 and 32
concurrent users for ``--seconds`` each (both are up, one is under load at a time, so background load
drifts over both alike; no think time: a user sends its next request when the last one answered).
Requests are ``GET /recommend?customer_id=...&k=50``: customers drawn with probability proportional to
their purchase history length + 1 (an active customer visits more often), and ``--unknown`` of them ids
the model never saw (the cold path).

Per run: p50 / p95 / p99 latency (exact, from every request's response time as locust measures it),
requests/s, errors (non-2xx or a failed connection), and with Redis its hit rate (Redis's own
keyspace_hits / keyspace_misses over the run: the service reads only user embeddings there) and the share
of requests whose embedding came from Redis. The floor: the bench stage's single-user numbers
(``metrics/bench.json``: one user embedding + one top-50 retrieval over the catalogue), and the same
request answered in-process by ``Recommender`` in this run (no HTTP, no JSON), so the ratios show what
HTTP, JSON and the concurrency cost.

    pip install -c constraints.txt -e '.[load]'      # locust
    python scripts/load_serve.py [--artifacts artifacts] [--seconds 20] [--users 1,8,32] [--workers 2]
                                 [--bench metrics/bench.json] [--out reports/serve_load.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import dc003  # noqa: F401  (offline, no telemetry)
from dc003.io import write_json

LOCUSTFILE = """
import json, os, random
from locust import FastHttpUser, events, task

IDS = json.load(open(os.environ["LOAD_IDS"]))
TIMES = []  # (response time in ms as locust measures it, answered 2xx)

@events.request.add_listener
def _record(response_time, exception, response, **_):
    TIMES.append((response_time, exception is None and 200 <= response.status_code < 300))

@events.quitting.add_listener
def _dump(**_):
    with open(os.environ["LOAD_TIMES"], "w") as fh:
        json.dump(TIMES, fh)

class Customer(FastHttpUser):
    @task
    def recommend(self):
        cid = IDS[random.randrange(len(IDS))]
        self.client.get("/recommend", params={"customer_id": cid, "k": 50}, name="/recommend")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    import urllib.request

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"dc003 serve exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as res:
                if res.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"dc003 serve did not answer: {log.read_text()}")


def _summary(ms: np.ndarray) -> dict[str, float]:
    return {
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "p99": float(np.percentile(ms, 99)),
        "mean": float(ms.mean()),
    }


def _customers(artifacts: Path, n: int, unknown: float, seed: int) -> list[str]:
    from dc003.deploy import layout
    from dc003.deploy.serving import UserTable
    from dc003.exported import load_mappings

    customers = load_mappings(artifacts / layout.MAPPINGS).customers
    lengths = UserTable.load(artifacts / layout.USER_FEATURES).history_length[customers.rows]
    weight = lengths.astype(np.float64) + 1
    rng = np.random.default_rng(seed)
    picked = customers.decode(rng.choice(len(customers), size=n, p=weight / weight.sum()))
    cold = rng.random(n) < unknown
    return [f"unknown-{i}" if c else str(p) for i, (p, c) in enumerate(zip(picked, cold, strict=True))]


def _in_process(artifacts: Path, ids: list[str], reps: int) -> dict[str, float]:
    from dc003.deploy.serving import Recommender
    from dc003.deploy.timing import latency_ms

    rec = Recommender(artifacts)
    return latency_ms(lambda i: rec.recommend(ids[i % len(ids)], 50), 50, reps)


def _redis_stats(port: int) -> dict[str, int]:
    import redis

    info = redis.Redis(port=port).info("stats")
    return {"hits": int(info["keyspace_hits"]), "misses": int(info["keyspace_misses"])}


def _locust(url: str, users: int, seconds: int, ids_file: Path, tmp: Path) -> dict[str, Any]:
    locustfile = tmp / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    times_file = tmp / f"times_{users}.json"
    prefix = tmp / f"stats_{users}"
    cmd = [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", url,
        "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--csv", str(prefix), "--only-summary",
        "--loglevel", "WARNING", "--stop-timeout", "5",
    ]  # fmt: skip
    env = {**os.environ, "LOAD_IDS": str(ids_file), "LOAD_TIMES": str(times_file)}
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if not times_file.is_file():
        raise SystemExit(f"locust failed ({done.returncode}): {done.stderr[-2000:]}")
    rows = json.loads(times_file.read_text())
    ms = np.array([t for t, _ in rows], dtype=np.float64)
    errors = sum(not ok for _, ok in rows)
    with open(f"{prefix}_stats.csv", newline="") as fh:
        aggregated = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
    return {
        "users": users,
        "requests": int(ms.size),
        "errors": int(errors),
        "locust_failures": int(aggregated["Failure Count"]),
        "requests_per_s": float(aggregated["Requests/s"]),
        "latency_ms": _summary(ms),
        "locust_wall_s": round(wall, 1),
    }


def _serve(
    args: argparse.Namespace, tmp: Path, redis_port: int | None
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    log = tmp / f"serve_{port}.log"
    cmd = [
        str(Path(sys.executable).parent / "dc003"), "serve", "--artifacts", str(args.artifacts),
        "--port", str(port), "--workers", str(args.workers), "--params", str(args.params), "--no-embed-items",
    ]  # fmt: skip
    env = dict(os.environ)
    env.pop("DC003_REDIS_URL", None)
    if redis_port is not None:
        cmd += ["--redis-url", f"redis://127.0.0.1:{redis_port}/0"]
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    _wait(url, proc, log)
    return proc, url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--bench", type=Path, default=Path("metrics/bench.json"))
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--users", default="1,8,32")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--unknown", type=float, default=0.02, help="share of requests for unknown customers")
    ap.add_argument("--ids", type=int, default=20000, help="customer ids drawn for the request mix")
    ap.add_argument("--in-process-reps", type=int, default=500)
    ap.add_argument("--out", type=Path, default=Path("reports/serve_load.json"))
    args = ap.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server missing: run scripts/setup_system.sh")
    users = [int(u) for u in args.users.split(",")]
    ids = _customers(args.artifacts, args.ids, args.unknown, seed=0)
    from dc003.params import load_sections

    policy = load_sections(args.params, ("serve",)).serve
    bench = json.loads(args.bench.read_text()) if args.bench.is_file() else {}
    lat = bench.get("latency_ms", {})
    # the bench stage's single-user numbers on this catalogue: one user embedding, one top-50 retrieval
    floor = {k: lat[k] for k in ("single_user_embedding", "top50_retrieval_catalogue") if k in lat}
    if len(floor) == 2:
        floor["sum_p50"] = floor["single_user_embedding"]["p50"] + floor["top50_retrieval_catalogue"]["p50"]
    in_process = _in_process(args.artifacts, ids, args.in_process_reps)

    out: dict[str, Any] = {
        "what": "GET /recommend?customer_id=...&k=50 with locust (FastHttpUser, no think time) on 127.0.0.1",
        "artifacts": str(args.artifacts),
        "workers": args.workers,
        "seconds_per_run": args.seconds,
        "request_mix": {
            "customers": "drawn with probability proportional to purchase history length + 1",
            "unknown_share": args.unknown,
            "distinct_ids": len(set(ids)),
        },
        "cache_policy": {"cache_top_users": policy.cache_top_users, "cache_ttl_s": policy.cache_ttl_s},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "floor": {"bench_stage": floor, "in_process_recommend_ms": in_process},
        "load_average_at_start": list(os.getloadavg()),  # other work on the machine skews every number
        "runs": {},
    }
    with tempfile.TemporaryDirectory(prefix="dc003-load-") as tmp_name:
        tmp = Path(tmp_name)
        ids_file = tmp / "ids.json"
        ids_file.write_text(json.dumps(ids))
        redis_port = _free_port()
        redis_proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "", "--appendonly",
             "no", "--dir", str(tmp)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            time.sleep(0.5)
            servers = {"redis": _serve(args, tmp, redis_port), "no_cache": _serve(args, tmp, None)}
            out["runs"] = {mode: [] for mode in servers}
            try:
                # the two services take turns at each level, so background load drifts over both alike
                for n in users:
                    for mode, (_, url) in servers.items():
                        before = _redis_stats(redis_port)
                        run = _locust(url, n, args.seconds, ids_file, tmp)
                        if mode == "redis":
                            after = _redis_stats(redis_port)
                            hits, misses = after["hits"] - before["hits"], after["misses"] - before["misses"]
                            run["redis_hit_rate"] = hits / (hits + misses) if hits + misses else None
                            run["share_served_from_redis"] = hits / max(run["requests"], 1)
                        out["runs"][mode].append(run)
                        print(mode, json.dumps(run), flush=True)
            finally:
                for proc, _ in servers.values():
                    proc.terminate()
                    proc.wait(timeout=30)
        finally:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
    one = out["runs"]["redis"][0]["latency_ms"]["p50"] if users[0] == 1 else None
    out["ratios"] = {
        "service_p50_1_user_over_in_process_p50": one / in_process["p50"] if one else None,
        "service_p50_1_user_over_bench_floor": one / floor["sum_p50"] if one and "sum_p50" in floor else None,
        "no_cache_p50_over_redis_p50": {
            str(r["users"]): n["latency_ms"]["p50"] / r["latency_ms"]["p50"]
            for r, n in zip(out["runs"]["redis"], out["runs"]["no_cache"], strict=True)
        },
    }
    out["load_average_at_end"] = list(os.getloadavg())
    out["errors_total"] = sum(r["errors"] + r["locust_failures"] for rs in out["runs"].values() for r in rs)
    write_json(args.out, out)
    print(f"wrote {args.out} (errors: {out['errors_total']})")


if __name__ == "__main__":
    main()
