"""What ``dc003 serve`` serves: which artifacts folder (the promoted GTO version, or one given), what it is
(registry version, contract version, digests, the Redis key prefix) and the loaded model, swapped whole
when a new version appears.

**Which folder.** With ``--artifacts DIR``: that folder; its registry version is the GTO version whose tag
records the folder's DVC md5, else ``unregistered``. Without it: the newest version of the ``two-tower``
artifact in the ``prod`` stage of the project's registry (:mod:`dc003.registry`), served from the project's
own artifacts folder when its md5 is the tag's, else downloaded once with ``dvc artifacts get`` into
``.dvc/tmp/serve/<version>``. Neither: one error saying what to do.

**Versions never mix.** The version key is the registry version when there is one, else ``md5-<the
folder's DVC md5>``; every Redis key of a model starts with ``dc003:<version key>:``, so a promotion or a
new export never reads vectors of the model before it.

**Switching.** :class:`Holder` keeps the model a request reads (one attribute, read once per request) and
a thread that polls the source every ``reload_poll_s``: a changed folder (a re-export, or a symlink
repointed: blue/green) or a new prod tag is loaded beside the old model, which keeps serving until the
new one is ready; a request sees one model or the other, never half of each. A folder still changing (an
export under way) is loaded only once two polls agree; a folder that fails to load is logged and skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dc003.deploy import layout
from dc003.deploy.serving import Recommender, session
from dc003.errors import Dc003Error
from dc003.exported import load_mappings, read_artifact

log = logging.getLogger("dc003.serve")
UNREGISTERED = "unregistered"
SERVE_CACHE = Path(".dvc") / "tmp" / "serve"  # where promoted versions are downloaded (project-relative)
# the customer and catalogue snapshot (MAPPING_IDS: absent from a format-1 export)
DATA_FILES = (layout.MAPPINGS, layout.MAPPING_IDS, layout.USER_FEATURES, layout.ITEMS)


@dataclass(frozen=True)
class Source:
    """Where the model comes from: a folder, and the registry version it holds (None: unregistered)."""

    artifacts: Path
    version: str | None
    project: Path | None  # the project whose registry names the version (None: no git repository)
    promoted: bool = False  # True: the prod stage chose it (watch the tags); False: a given folder (watch it)


def _prod_versions(project: Path) -> list[dict[str, Any]]:
    from dc003.registry import PROD_STAGE, versions

    return [v for v in versions(project) if PROD_STAGE in v["stages"]]


def prod_tags(project: Path) -> str:
    """The project's ``two-tower`` tags (cheap: one git call), to notice a promotion."""
    from dc003.registry import MODEL_ARTIFACT

    done = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)%(objectname)", f"refs/tags/{MODEL_ARTIFACT}*"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    return done.stdout


def registry_version(project: Path | None, md5: str) -> str | None:
    """The GTO version whose tag records DVC md5 ``md5`` in ``project`` (None: none, or no registry)."""
    if project is None or not (project / ".git").exists():
        return None
    from dc003.registry import versions

    try:
        found = versions(project)
    except Dc003Error:
        return None
    return next((v["version"] for v in found if v.get("artifacts_md5") == md5), None)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _materialise(project: Path, version: str) -> Path:
    """``dvc artifacts get`` of ``version`` into the serve cache (once; a lock keeps replicas from racing)."""
    from dc003.registry import MODEL_ARTIFACT

    out = project / SERVE_CACHE / version
    with _locked(project / SERVE_CACHE / f"{version}.lock"):
        if not (out / layout.MODEL_CONFIG).is_file():
            tmp = out.with_name(f".{version}.partial")
            subprocess.run(["rm", "-rf", str(tmp)], check=False)
            done = subprocess.run(
                [sys.executable, "-m", "dvc", "artifacts", "get", str(project), MODEL_ARTIFACT,
                 "--rev", version, "-o", str(tmp)],
                capture_output=True, text=True, cwd=project,
            )  # fmt: skip
            if done.returncode != 0:
                detail = (done.stderr or done.stdout).strip().splitlines()
                raise Dc003Error(
                    f"dvc artifacts get {MODEL_ARTIFACT} --rev {version}: "
                    f"{detail[-1] if detail else done.returncode} (run `dvc pull` or `dvc push` first)"
                )
            os.replace(tmp, out)
    return out


def resolve(project: Path, artifacts: Path | None) -> Source:
    """The folder to serve: ``artifacts`` when given, else the project's prod version (see the module)."""
    from dc003.registry import declared_artifact, dvc_md5

    if artifacts is not None:
        if not (artifacts / layout.MODEL_CONFIG).is_file():
            raise Dc003Error(f"{artifacts / layout.MODEL_CONFIG}: missing: run the export stage first")
        watched = project if (project / ".git").exists() else None
        return Source(artifacts, registry_version(watched, dvc_md5(artifacts)), watched)
    if not (project / ".git").exists():
        raise Dc003Error(
            f"{project}: not a git repository, so no registry to serve the promoted model from: "
            "pass --artifacts DIR (e.g. the export stage's artifacts/)"
        )
    found = _prod_versions(project)
    if not found:
        raise Dc003Error(
            f"{project}: no two-tower version in stage prod (promotion is refused while a gate fails: "
            "`dc003 gates check`): pass --artifacts DIR to serve an unpromoted export"
        )
    latest = max(found, key=lambda v: v["created_at"])
    path = project / declared_artifact(project)["path"]
    if path.is_dir() and dvc_md5(path) == latest.get("artifacts_md5"):
        return Source(path, latest["version"], project, promoted=True)
    return Source(_materialise(project, latest["version"]), latest["version"], project, promoted=True)


def folder_signature(path: Path) -> tuple[Any, ...]:
    """What changes when a folder's files do (target of a symlink, names, sizes, mtimes): cheap to poll."""
    real = path.resolve()
    if not real.is_dir():
        return (str(real),)
    return (
        str(real),
        tuple(
            sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in real.iterdir() if f.is_file())
        ),
    )


def _md5_files(folder: Path, names: tuple[str, ...]) -> str:
    from dc003.registry import _md5_file

    listing = "\n".join(f"{n} {_md5_file(folder / n)}" for n in names if (folder / n).is_file())
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()


class ItemEmbedder:
    """New articles -> item embeddings: the item tower on their categorical values, numericals and texts
    (the texts through MiniLM in ONNX, :class:`dc003.serve.text_encoder.OnnxTextEncoder`)."""

    def __init__(self, artifacts: Path, config: dict[str, Any], encoder: Any, threads: int = 1) -> None:
        tower = config["model"]["item_tower"]
        self.categorical = [c["name"] for c in tower["categorical"]]
        self.numerical = [n["name"] for n in tower["numerical"]]
        self.text = [t["name"] for t in tower["text"]]
        self.text_dim = int(tower["text"][0]["embedding_dim"]) if tower["text"] else 0
        self.vocab = load_mappings(artifacts / layout.MAPPINGS).categorical  # the header only
        name = config["serving"].get("item_tower", layout.ITEM_TOWER)
        self.session = read_artifact(artifacts / name, lambda p: session(p, threads))
        self.encoder = encoder

    def embed(self, items: list[dict[str, Any]]) -> tuple[np.ndarray, list[list[str]]]:
        """``(N, dim)`` embeddings and, per item, the categorical features whose value the model does not
        know (they take index 0, the unknown value, as in training)."""
        from dc003.deploy.serving import embed_items

        n = len(items)
        cat = np.zeros((n, len(self.categorical)), dtype=np.int64)
        num = np.full((n, len(self.numerical)), np.nan, dtype=np.float32)
        text = np.zeros((n, len(self.text), self.text_dim), dtype=np.float32)
        unknown: list[list[str]] = [[] for _ in range(n)]
        for r, item in enumerate(items):
            for j, name in enumerate(self.categorical):
                value = item["categorical"].get(name)
                if value is not None:
                    cat[r, j] = self.vocab.get(name, {}).get(str(value), 0)
                    if not cat[r, j]:
                        unknown[r].append(name)
            for j, name in enumerate(self.numerical):
                value = item["numerical"].get(name)
                if value is not None:
                    num[r, j] = value
        wanted = [(r, j, item["text"].get(name) or "") for r, item in enumerate(items) for j, name in
                  enumerate(self.text)]  # fmt: skip
        present = [(r, j, t) for r, j, t in wanted if t]  # an empty text is the zero vector, as in training
        if present:
            vectors = self.encoder([t for _, _, t in present])
            for (r, j, _), vec in zip(present, vectors, strict=True):
                text[r, j] = vec
        return embed_items(self.session, cat, num, text), unknown


@dataclass
class Served:
    """One loaded model version: everything a request reads, swapped as a whole."""

    recommender: Recommender
    items: ItemEmbedder | None
    source: Source
    artifacts_md5: str
    data_digest: str
    contract_version: str
    cold_embedding: np.ndarray
    cached_rows: np.ndarray  # bool per user row: in the cache policy's most active customers
    loaded_at: float = field(default_factory=time.time)

    @property
    def version(self) -> str:
        return self.source.version or UNREGISTERED

    @property
    def key(self) -> str:
        """The version key every Redis key of this model starts with."""
        return self.source.version or f"md5-{self.artifacts_md5.removesuffix('.dir')}"

    def describe(self) -> dict[str, Any]:
        return {
            "model_version": self.version,
            "version_key": self.key,
            "contract_version": self.contract_version,
            "artifacts_md5": self.artifacts_md5,
            "data_digest": self.data_digest,
            "artifacts": str(self.source.artifacts),
            "items": int(self.recommender.index.ntotal),
            "users": len(self.recommender.customers),
            "cached_users": int(self.cached_rows.sum()),
            "loaded_at": self.loaded_at,
        }


def most_active(lengths: np.ndarray, top: int) -> np.ndarray:
    """Bool per user row: the ``top`` users with the longest purchase history the user tower sees (ties: the
    lower row first)."""
    chosen = np.zeros(lengths.size, dtype=bool)
    order = np.lexsort((np.arange(lengths.size), -np.asarray(lengths)))
    chosen[order[: max(0, top)]] = True
    return chosen


def load(source: Source, *, cache_top_users: int, threads: int = 1, encoder: Any = None) -> Served:
    """Load ``source`` (ONNX Runtime sessions, FAISS index, mappings) once."""
    import json

    from dc003.registry import dvc_md5

    folder = source.artifacts
    config = read_artifact(folder / layout.MODEL_CONFIG, lambda p: json.loads(p.read_text("utf-8")))
    rec = Recommender(folder, threads)
    cold = rec.embed_table(rec.user_table(np.array([-1])))
    return Served(
        recommender=rec,
        items=ItemEmbedder(folder, config, encoder, threads) if encoder is not None else None,
        source=source,
        artifacts_md5=dvc_md5(folder),
        data_digest=_md5_files(folder, DATA_FILES),
        contract_version=str(config["model"].get("contract_version", "")),
        cold_embedding=cold,
        cached_rows=most_active(rec.users.history_length, cache_top_users),
    )


class Holder:
    """The model requests read, and the thread that replaces it when the source changes."""

    def __init__(
        self,
        served: Served,
        resolve_source: Callable[[], Source],
        loader: Callable[[Source], Served],
        poll_s: float,
        on_switch: Callable[[Served], None] | None = None,
    ) -> None:
        self.current = served
        self._resolve = resolve_source
        self._load = loader
        self._poll_s = poll_s
        self._on_switch = on_switch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.switches = 0

    def _signature(self) -> tuple[Any, ...]:
        source = self.current.source
        if source.promoted and source.project is not None:  # the prod stage's version: watch the tags
            return (prod_tags(source.project),)
        return folder_signature(source.artifacts)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dc003-serve-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        seen = self._signature()
        pending: tuple[Any, ...] | None = None
        while not self._stop.wait(self._poll_s):
            now = seen
            try:
                now = self._signature()
                if now == seen:
                    pending = None
                    continue
                if now != pending:  # changed since the last poll: wait for it to settle (an export under way)
                    pending = now
                    continue
                self.switch()
                seen, pending = self._signature(), None
            except Exception as exc:  # a half-written or broken folder: keep serving the current model
                log.warning("model reload skipped: %s", exc)
                seen, pending = now, None

    def switch(self) -> Served:
        """Resolve and load the source now, then make it the model requests read."""
        new = self._load(self._resolve())
        if self._on_switch is not None:
            self._on_switch(new)
        old, self.current = self.current, new
        self.switches += 1
        log.warning("serving %s (was %s)", new.key, old.key)
        return new
