"""ONNX-only inference over the exported artifacts (:mod:`dc003.deploy.layout`): ONNX Runtime, FAISS, numpy.

Nothing here imports torch, so ``dc003 recommend`` and the bench measure what a serving process would run.
A user batch is sorted by history length and run in chunks trimmed to their longest history: the towers
accept any history length 1..max_len, and short histories are much cheaper than padding every row to 50.
An empty history (a cold-start user) is one padded slot: the CLS token attends to itself alone, exactly as
the PyTorch tower does for a zero-length history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dc003.deploy import layout
from dc003.exported import load_mappings, open_npz, read_artifact

if TYPE_CHECKING:
    import onnxruntime as ort

# users per tower call inside a batch: 64 padded less and ran faster than 256 or 1,000 on the default data
USER_CHUNK = 64
ITEM_CHUNK = 4096


def session(path: str | Path, threads: int = 1, optimization: str = "all") -> ort.InferenceSession:
    """A CPU session with ``threads`` intra-op threads (sequential execution, one inter-op thread)."""
    import onnxruntime as ort

    levels = {
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = levels[optimization]
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def user_inputs(
    categorical: np.ndarray, numerical: np.ndarray, history: np.ndarray, lengths: np.ndarray
) -> dict[str, np.ndarray]:
    """The user tower's feed for rows whose history is ``history[:, :lengths]`` (most recent first)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    width = max(1, int(lengths.max(initial=0)))
    padding = np.arange(width)[None, :] >= lengths[:, None]
    hist = np.where(padding, 0, np.asarray(history)[:, :width]).astype(np.int64)
    return {
        "categorical": np.ascontiguousarray(categorical, dtype=np.int64),
        "numerical": np.ascontiguousarray(numerical, dtype=np.float32),
        "history": hist,
        "history_padding": padding,
    }


def embed_users(
    sess: ort.InferenceSession,
    categorical: np.ndarray,
    numerical: np.ndarray,
    history: np.ndarray,
    lengths: np.ndarray,
    chunk: int = USER_CHUNK,
) -> np.ndarray:
    """``(B, dim)`` user embeddings, rows in input order (run in length-sorted chunks)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    out: np.ndarray | None = None
    for s in range(0, order.size, chunk):
        pos = order[s : s + chunk]
        feed = user_inputs(categorical[pos], numerical[pos], history[pos], lengths[pos])
        emb = sess.run([layout.USER_OUTPUT], feed)[0]
        if out is None:
            out = np.empty((order.size, emb.shape[1]), dtype=np.float32)
        out[pos] = emb
    return out if out is not None else np.empty((0, 0), dtype=np.float32)


def embed_items(
    sess: ort.InferenceSession,
    categorical: np.ndarray,
    numerical: np.ndarray,
    text: np.ndarray,
    chunk: int = ITEM_CHUNK,
) -> np.ndarray:
    parts = [
        sess.run(
            [layout.ITEM_OUTPUT],
            {
                "categorical": np.ascontiguousarray(categorical[s : s + chunk], dtype=np.int64),
                "numerical": np.ascontiguousarray(numerical[s : s + chunk], dtype=np.float32),
                "text": np.ascontiguousarray(text[s : s + chunk], dtype=np.float32),
            },
        )[0]
        for s in range(0, categorical.shape[0], chunk)
    ]
    return np.concatenate(parts).astype(np.float32, copy=False)


@dataclass(frozen=True)
class UserTable:
    """Serving-time user features (``user_features.npz``), row = user row of the mappings; :meth:`load`
    memory-maps the arrays (a row is read when it is asked for)."""

    categorical: np.ndarray
    numerical: np.ndarray
    history: np.ndarray
    history_length: np.ndarray

    @classmethod
    def load(cls, path: Path) -> UserTable:
        z = open_npz(path)
        return cls(z["categorical"], z["numerical"], z["history"], z["history_length"])

    def cold(self) -> UserTable:
        """One user with nothing known: unknown categoricals (index 0), missing numericals, no history."""
        return UserTable(
            np.zeros((1, self.categorical.shape[1]), dtype=np.int64),
            np.full((1, self.numerical.shape[1]), np.nan, dtype=np.float32),
            np.zeros((1, self.history.shape[1]), dtype=np.int32),
            np.zeros(1, dtype=np.int64),
        )

    def rows(self, idx: np.ndarray) -> UserTable:
        return UserTable(
            self.categorical[idx], self.numerical[idx], self.history[idx], self.history_length[idx]
        )

    def rows_or_cold(self, idx: np.ndarray) -> UserTable:
        """:meth:`rows`, with the :meth:`cold` user wherever ``idx`` is negative (an unknown customer)."""
        idx = np.asarray(idx, dtype=np.int64)
        cold = idx < 0
        out = self.rows(np.where(cold, 0, idx))
        if cold.any():
            blank = self.cold()
            for mine, theirs in zip(
                (out.categorical, out.numerical, out.history, out.history_length),
                (blank.categorical, blank.numerical, blank.history, blank.history_length),
                strict=True,
            ):
                mine[cold] = theirs[0]
        return out


def _serving_section(path: Path) -> dict[str, Any]:
    serving = dict(json.loads(path.read_text("utf-8"))["serving"])
    str(serving["user_tower"])  # a KeyError here: not the export stage's config
    return serving


def serving_config(artifacts_dir: Path) -> dict[str, Any]:
    """The export's serving section of ``model_config.json`` (which graphs serve, the score's knobs); one
    error line naming the file when it is missing or not the export stage's."""
    return read_artifact(artifacts_dir / layout.MODEL_CONFIG, _serving_section)


@dataclass(frozen=True)
class Recommendation:
    customer_id: str
    cold_start: bool
    items: list[dict[str, Any]]  # rank, article_id, prod_name, product_group_name, score


class Recommender:
    """The exported artifacts loaded for serving: user tower session, FAISS index, mappings, names.

    The steps are separate so a service can cache user embeddings between them: :meth:`lookup` (customer
    ids -> user rows, -1 = unknown: the cold-start path), :meth:`user_table` / :meth:`embed_table` (the
    user tower) and :meth:`search` (FAISS with the serving score). :meth:`recommend_many` chains them.
    """

    def __init__(self, artifacts_dir: Path, threads: int = 1) -> None:
        import faiss
        import pyarrow.parquet as pq

        serving = serving_config(artifacts_dir)
        self.customers = load_mappings(artifacts_dir / layout.MAPPINGS).customers  # memory-mapped
        self.users = read_artifact(artifacts_dir / layout.USER_FEATURES, UserTable.load)
        self.session = read_artifact(artifacts_dir / serving["user_tower"], lambda p: session(p, threads))
        faiss.omp_set_num_threads(threads)
        self.index = read_artifact(artifacts_dir / layout.INDEX, lambda p: faiss.read_index(str(p)))
        self.prior_weight: float | None = serving.get("prior_weight")  # the popularity prior
        self.repurchase_boost = float(serving.get("repurchase_boost") or 0.0)
        # the list's tail ranked with another prior weight after its first head_k (null: one ranking)
        self.tail_weight: float | None = serving.get("tail_weight")
        self.head_k = int(serving.get("head_k") or 0)
        self.temperature = float(serving.get("temperature") or 1.0)
        items = read_artifact(artifacts_dir / layout.ITEMS, lambda p: pq.read_table(p).to_pydict())
        self.item_columns = {k: list(v) for k, v in items.items()}

    def lookup(self, customer_ids: list[str]) -> np.ndarray:
        """User rows of ``customer_ids`` (``-1``: unknown, the cold-start path)."""
        return self.customers.lookup(customer_ids)

    def user_table(self, rows: np.ndarray) -> UserTable:
        return self.users.rows_or_cold(rows)

    def embed_table(self, table: UserTable) -> np.ndarray:
        """``(B, dim)`` user embeddings of ``table``'s rows."""
        return embed_users(
            self.session, table.categorical, table.numerical, table.history, table.history_length
        )

    def embed(self, customer_id: str) -> tuple[np.ndarray, bool]:
        """``(1, dim)`` embedding and whether the customer took the cold-start path (unknown id)."""
        rows = self.lookup([customer_id])
        return self.embed_table(self.user_table(rows)), bool(rows[0] < 0)

    def search(self, embeddings: np.ndarray, table: UserTable, k: int) -> list[list[dict[str, Any]]]:
        """The top ``k`` articles per row of ``embeddings`` (users ``table``: their repurchase bonus)."""
        from dc003.deploy.retrieval import search
        from dc003.scoring.serving_score import repurchase_bonus

        bonus = repurchase_bonus(
            table.history, table.history_length, self.index.ntotal, self.repurchase_boost, self.temperature
        )
        scores, ids = search(
            self.index, embeddings, k, self.prior_weight, bonus,
            tail_weight=self.tail_weight, head_k=self.head_k,
        )  # fmt: skip
        cols = self.item_columns
        return [
            [
                {
                    "rank": rank,
                    "article_id": cols["article_id"][i],
                    "prod_name": cols["prod_name"][i],
                    "product_group_name": cols["product_group_name"][i],
                    "score": float(s),
                }
                for rank, (i, s) in enumerate(zip(row_ids, row_scores, strict=True), start=1)
                if i >= 0
            ]
            for row_ids, row_scores in zip(ids.tolist(), scores.tolist(), strict=True)
        ]

    def recommend_many(self, customer_ids: list[str], k: int = 50) -> list[Recommendation]:
        rows = self.lookup(customer_ids)
        table = self.user_table(rows)
        found = self.search(self.embed_table(table), table, k)
        return [
            Recommendation(customer_id=c, cold_start=bool(r < 0), items=items)
            for c, r, items in zip(customer_ids, rows.tolist(), found, strict=True)
        ]

    def recommend(self, customer_id: str, k: int = 50) -> Recommendation:
        return self.recommend_many([customer_id], k)[0]
