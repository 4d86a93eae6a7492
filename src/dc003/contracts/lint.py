"""`dc003 contracts lint`: internal consistency of the DC-003 declaration (and DC-002 via dc002_lint).

Contradictions inside the document are warnings when the implementation resolves them by a stated
rule (the resolution is part of the message), errors when the contract cannot be met as written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator

from dc003.contracts.dc003 import Dc003Contract, Phase, Tower
from dc003.contracts.findings import Finding, Severity
from dc003.contracts.thresholds import Threshold

DC003_FILE = "contracts/dc003.yaml"


def _f(severity: Severity, paths: Iterable[str], message: str, contract: str = DC003_FILE) -> Finding:
    return Finding(severity=severity, contract=contract, paths=list(paths), message=message)


def lint_dc003(c: Dc003Contract, *, today: dt.date | None = None) -> list[Finding]:
    today = today or dt.date.today()
    findings: list[Finding] = []
    for check in (
        _tower_widths,
        _output_dims,
        _sequence_encoder,
        _phase_tables,
        _phase_internal,
        _dropout_declarations,
        _threshold_domains,
        _size_budgets,
        _artifact_paths,
        _clarifications_exist,
    ):
        findings.extend(check(c))
    findings.extend(_dates(c, today))
    return findings


def _tower_widths(c: Dc003Contract) -> Iterator[Finding]:
    for name, tower in (("user_tower", c.user_tower), ("item_tower", c.item_tower)):
        width = tower.feature_width()
        if width != tower.input_dim:
            parts = _width_parts(name, tower)
            yield _f(
                "warning",
                [f"{name}.input_dim", *parts],
                f"declared input_dim {tower.input_dim} but the declared features add up to {width}; "
                f"resolved: the first dense layer takes the actual feature width ({width})",
            )


def _width_parts(name: str, tower: Tower) -> list[str]:
    parts = [f"{name}.categorical_embeddings", f"{name}.numerical_features"]
    if name == "user_tower":
        parts.append(f"{name}.sequence_encoder.d_model")
    else:
        parts.append(f"{name}.text_features")
    return parts


def _output_dims(c: Dc003Contract) -> Iterator[Finding]:
    dim = c.architecture.embedding_dim
    for name, tower in (("user_tower", c.user_tower), ("item_tower", c.item_tower)):
        last = tower.projection_head[-1]
        if last.units != tower.output_dim:
            yield _f(
                "error",
                [f"{name}.output_dim", f"{name}.projection_head[{len(tower.projection_head) - 1}].units"],
                f"the projection head ends in {last.units} units but output_dim is {tower.output_dim}",
            )
        if tower.output_dim != dim:
            yield _f(
                "error",
                [f"{name}.output_dim", "architecture.embedding_dim"],
                f"{name} outputs {tower.output_dim}-d embeddings but the joint space is {dim}-d",
            )
        if last.activation != "none":
            yield _f(
                "warning",
                [f"{name}.projection_head[{len(tower.projection_head) - 1}].activation"],
                f"the final embedding layer has activation {last.activation!r}; a non-linear last layer "
                "restricts the embedding space (e.g. ReLU makes every similarity non-negative)",
            )
    if c.global_config.embedding_dim != dim:
        yield _f(
            "error",
            ["global_config.embedding_dim", "architecture.embedding_dim"],
            f"global embedding_dim {c.global_config.embedding_dim} differs from the joint space ({dim})",
        )


def _sequence_encoder(c: Dc003Contract) -> Iterator[Finding]:
    seq = c.user_tower.sequence_encoder
    if seq.positional_encoding.max_len < seq.max_sequence_length:
        yield _f(
            "error",
            [
                "user_tower.sequence_encoder.positional_encoding.max_len",
                "user_tower.sequence_encoder.max_sequence_length",
            ],
            f"positional encoding covers {seq.positional_encoding.max_len} positions but sequences are "
            f"up to {seq.max_sequence_length} long",
        )


def _phase_tables(c: Dc003Contract) -> Iterator[Finding]:
    """The phase configs and the hyperparameter table state the same things twice; compare them."""
    for key, phase in c.phases.items():
        table = getattr(c.phase_hyperparameters, key)
        here = f"phases.{key}"
        there = f"phase_hyperparameters.{key}"
        pairs: list[tuple[str, str, object, object]] = [
            (
                "optimization.learning_rate",
                "learning_rate",
                phase.optimization.learning_rate,
                table.learning_rate,
            ),
            ("optimization.scheduler", "scheduler", phase.optimization.scheduler, table.scheduler),
            (_batch_size_key(key), "batch_size", phase.batch_size_value(), table.batch_size),
            ("epochs", "epochs", str(phase.epochs), str(table.epochs)),
        ]
        if phase.optimization.min_learning_rate is not None or table.min_learning_rate is not None:
            pairs.append(
                (
                    "optimization.min_learning_rate",
                    "min_learning_rate",
                    phase.optimization.min_learning_rate,
                    table.min_learning_rate,
                )
            )
        for own, tab, a, b in pairs:
            if a != b:
                yield _f(
                    "warning",
                    [f"{here}.{own}", f"{there}.{tab}"],
                    f"{key} {tab} is {a!r} in the phase config but {b!r} in the hyperparameter table; "
                    "resolved: the phase config (the more specific section) is used",
                )


def _batch_size_key(key: str) -> str:
    return "training_optimization.batch_size" if key == "phase_2" else "batch_size"


def _phase_internal(c: Dc003Contract) -> Iterator[Finding]:
    p1 = c.phases.phase_1
    if p1.regularization.l2_weight_decay != p1.optimization.weight_decay:
        yield _f(
            "warning",
            ["phases.phase_1.regularization.l2_weight_decay", "phases.phase_1.optimization.weight_decay"],
            f"phase_1 states weight decay twice with different values ({p1.regularization.l2_weight_decay}"
            f" vs {p1.optimization.weight_decay})",
        )
    p2 = c.phases.phase_2
    lr_min = p2.optimization.min_learning_rate
    if lr_min is not None and lr_min >= p2.optimization.learning_rate:
        yield _f(
            "error",
            ["phases.phase_2.optimization.min_learning_rate", "phases.phase_2.optimization.learning_rate"],
            f"cosine decay floor {lr_min} is not below the starting rate {p2.optimization.learning_rate}",
        )
    p3 = c.phases.phase_3
    total = p3.composite_loss.primary_loss.weight + p3.composite_loss.auxiliary_loss.weight
    if abs(total - 1.0) > 1e-9:
        yield _f(
            "warning",
            [
                "phases.phase_3.composite_loss.primary_loss.weight",
                "phases.phase_3.composite_loss.auxiliary_loss.weight",
            ],
            f"composite loss weights sum to {total:g}, not 1",
        )
    for key, phase in c.phases.items():
        if phase.optimization.scheduler in ("cosine_annealing", "cosine_annealing_warm_restarts") and (
            phase.optimization.min_learning_rate is None
        ):
            yield _f(
                "warning",
                [f"phases.{key}.optimization.scheduler"],
                f"{key} anneals its learning rate but declares no min_learning_rate (0 assumed)",
            )


def _dropout_declarations(c: Dc003Contract) -> Iterator[Finding]:
    """Phase-level dropout rates compete with the per-layer rates the towers declare."""
    layer_rates = sorted(
        {
            layer.dropout
            for t in (c.user_tower, c.item_tower)
            for layer in (*t.dense_layers, *t.projection_head)
            if layer.dropout > 0
        }
    )
    phase_rates: list[tuple[str, float]] = []
    for key, phase in c.phases.items():
        rate = _phase_dropout(phase)
        if rate is not None:
            phase_rates.append((key, rate))
    for key, rate in phase_rates:
        if rate not in layer_rates or len(layer_rates) > 1:
            yield _f(
                "warning",
                [
                    f"phases.{key}.regularization.dropout_rate",
                    "user_tower.dense_layers",
                    "item_tower.dense_layers",
                ],
                f"{key} sets dropout_rate {rate:g} while the towers declare per-layer rates "
                f"{', '.join(f'{r:g}' for r in layer_rates)}; resolved: the per-layer rates are the "
                "architecture and apply in every phase",
            )


def _phase_dropout(phase: Phase) -> float | None:
    reg = getattr(phase, "regularization", None)
    return getattr(reg, "dropout_rate", None)


def _threshold_domains(c: Dc003Contract) -> Iterator[Finding]:
    """Impossible thresholds: a quality bar outside [0, 1], a size or latency in the wrong unit, ..."""
    inf = c.inference_requirements
    expect: list[tuple[str, Threshold, str]] = [
        (
            "inference_requirements.latency.single_user_embedding",
            inf.latency.single_user_embedding,
            "seconds",
        ),
        (
            "inference_requirements.latency.single_item_embedding",
            inf.latency.single_item_embedding,
            "seconds",
        ),
        ("inference_requirements.latency.batch_inference_1k", inf.latency.batch_inference_1k, "seconds"),
        ("inference_requirements.throughput.cpu_inference", inf.throughput.cpu_inference, "rate"),
        ("inference_requirements.throughput.gpu_inference", inf.throughput.gpu_inference, "rate"),
        ("inference_requirements.memory.user_tower_memory", inf.memory.user_tower_memory, "bytes"),
        ("inference_requirements.memory.item_tower_memory", inf.memory.item_tower_memory, "bytes"),
        ("inference_requirements.memory.total_model_memory", inf.memory.total_model_memory, "bytes"),
        ("inference_requirements.accuracy.recall_50", inf.accuracy.recall_50, "ratio"),
        ("inference_requirements.accuracy.ndcg_10", inf.accuracy.ndcg_10, "ratio"),
        ("inference_requirements.accuracy.coverage", inf.accuracy.coverage, "ratio"),
        (
            "inference_requirements.accuracy.cold_start_performance",
            inf.accuracy.cold_start_performance,
            "ratio",
        ),
        ("scalability_requirements.embedding_storage", c.scalability_requirements.embedding_storage, "bytes"),
        *[
            (
                f"model_size_requirements.{group}.{k}",
                getattr(getattr(c.model_size_requirements, group), k),
                "bytes",
            )
            for group, keys in (
                ("pytorch_model", ("user_tower", "item_tower", "complete_model")),
                ("onnx_optimized", ("user_tower", "item_tower", "total_optimized")),
            )
            for k in keys
        ],
        (
            "model_size_requirements.embedding_storage.vocab_embeddings",
            c.model_size_requirements.embedding_storage.vocab_embeddings,
            "bytes",
        ),
    ]
    for path, thr, dimension in expect:
        if thr.dimension != dimension:
            yield _f("error", [path], f"threshold {thr.text!r} is in {thr.dimension}, expected {dimension}")
            continue
        if dimension == "ratio":
            if thr.is_upper_bound and (thr.value < 0 or (thr.op == "<" and thr.value == 0)):
                yield _f("error", [path], f"{thr.text!r} can never be met: a ratio cannot be below 0")
            if not thr.is_upper_bound and (thr.value > 1 or (thr.op == ">" and thr.value == 1)):
                yield _f("error", [path], f"{thr.text!r} can never be met: this ratio cannot exceed 1")
        elif thr.is_upper_bound and (thr.value < 0 or (thr.op == "<" and thr.value == 0)):
            yield _f("error", [path], f"{thr.text!r} can never be met: the quantity cannot be negative")
    for item in c.model_validation.performance_validation:
        criterion = item.threshold()
        if (
            criterion is not None
            and criterion.dimension == "ratio"
            and not criterion.is_upper_bound
            and (criterion.value > 1)
        ):
            yield _f(
                "error",
                [f"model_validation.performance_validation.{item.check}"],
                f"{criterion.text!r} can never be met",
            )
    for item in c.model_validation.architecture_validation:
        if item.min_grad_norm and item.max_grad_norm and item.min_grad_norm >= item.max_grad_norm:
            yield _f(
                "error",
                [f"model_validation.architecture_validation.{item.check}"],
                "min_grad_norm must be below max_grad_norm",
            )


def _size_budgets(c: Dc003Contract) -> Iterator[Finding]:
    size = c.model_size_requirements
    groups = [
        (
            "model_size_requirements.pytorch_model",
            size.pytorch_model.user_tower,
            size.pytorch_model.item_tower,
            size.pytorch_model.complete_model,
            "complete_model",
        ),
        (
            "model_size_requirements.onnx_optimized",
            size.onnx_optimized.user_tower,
            size.onnx_optimized.item_tower,
            size.onnx_optimized.total_optimized,
            "total_optimized",
        ),
        (
            "inference_requirements.memory",
            c.inference_requirements.memory.user_tower_memory,
            c.inference_requirements.memory.item_tower_memory,
            c.inference_requirements.memory.total_model_memory,
            "total_model_memory",
        ),
    ]
    for base, user, item, total, total_key in groups:
        if not (user.dimension == item.dimension == total.dimension == "bytes"):
            continue
        if user.value > total.value or item.value > total.value:
            yield _f(
                "error",
                [
                    f"{base}.{'user_tower' if 'memory' not in base else 'user_tower_memory'}",
                    f"{base}.{total_key}",
                ],
                f"a single tower's budget exceeds the total ({user.text} / {item.text} vs {total.text})",
            )
        elif user.value + item.value > total.value:
            yield _f(
                "warning",
                [f"{base}.{total_key}"],
                f"tower budgets add up to {(user.value + item.value) / 1e6:g} MB, more than the total "
                f"{total.text}: both towers at budget would fail the total",
            )
    # Per-row embedding storage at the declared scale must fit the storage budget.
    storage = c.scalability_requirements.embedding_storage
    emb = size.embedding_storage
    scale = {
        "num_users": c.scalability_requirements.user_scale,
        "num_items": c.scalability_requirements.item_scale,
    }
    need = sum(scale[t.rows] * t.dim * t.bytes_per_value for t in (emb.user_embeddings, emb.item_embeddings))
    if storage.dimension == "bytes" and not storage.passes(need):
        yield _f(
            "warning",
            [
                "scalability_requirements.embedding_storage",
                "scalability_requirements.user_scale",
                "model_size_requirements.embedding_storage.user_embeddings",
            ],
            f"at the declared scale ({scale['num_users']:,} users, {scale['num_items']:,} items) fp32 "
            f"embeddings need {need / 1e9:.2f} GB, which does not meet {storage.text}; "
            "the storage gate is checked at the run's actual scale",
        )
    onnx_total, pt_total = size.onnx_optimized.total_optimized, size.pytorch_model.complete_model
    if onnx_total.dimension == pt_total.dimension == "bytes" and onnx_total.value > pt_total.value:
        yield _f(
            "warning",
            [
                "model_size_requirements.onnx_optimized.total_optimized",
                "model_size_requirements.pytorch_model.complete_model",
            ],
            "the optimised ONNX budget is larger than the PyTorch one",
        )


def _artifact_paths(c: Dc003Contract) -> Iterator[Finding]:
    seen: dict[str, str] = {}
    entries = c.output_artifacts.all()
    for group, i, art in entries:
        here = f"output_artifacts.{group}[{i}].path"
        norm = art.path.strip("/").replace("//", "/")
        if norm in seen:
            yield _f("error", [seen[norm], here], f"two artifacts are declared at the same path {art.path!r}")
        else:
            seen[norm] = here
        if norm.startswith("../") or art.path.startswith("/"):
            yield _f("error", [here], f"artifact path {art.path!r} must be relative and inside the project")
    paths = list(seen.items())
    for a, pa in paths:
        for b, pb in paths:
            if a != b and b.startswith(a + "/"):
                yield _f("error", [pa, pb], f"{a!r} is a file but {b!r} uses it as a directory")
    expected_suffix = {"PyTorch": ".pt", "ONNX": ".onnx", "JSON": ".json", "PNG": ".png"}
    for group, i, art in entries:
        suffix = expected_suffix[art.format]
        if not art.path.endswith(suffix):
            yield _f(
                "warning",
                [f"output_artifacts.{group}[{i}].path"],
                f"{art.format} artifact {art.path!r} does not end in {suffix}",
            )


def _clarifications_exist(c: Dc003Contract) -> Iterator[Finding]:
    data = c.model_dump(mode="python")
    for i, clar in enumerate(c.clarifications):
        if not _path_exists(data, clar.path):
            yield _f(
                "error", [f"clarifications[{i}].path"], f"clarifies {clar.path!r}, which is not declared"
            )


def _path_exists(data: object, dotted: str) -> bool:
    node = data
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list):
            # lists of named entries (checks, layers, features) are addressed by their name
            match = [
                e
                for e in node
                if isinstance(e, dict) and part in (e.get("check"), e.get("name"), e.get("metric"))
            ]
            if not match:
                return False
            node = match[0]
        else:
            return False
    return True


def _dates(c: Dc003Contract, today: dt.date) -> Iterator[Finding]:
    meta = c.contract
    if meta.review_date < meta.created:
        yield _f("error", ["contract.review_date", "contract.created"], "review date is before creation")
    if meta.next_review < meta.created:
        yield _f("error", ["contract.next_review", "contract.created"], "next review is before creation")
    if meta.status == "active" and meta.next_review < today:
        yield _f(
            "warning",
            ["contract.next_review", "contract.status"],
            f"the contract is active but its review was due on {meta.next_review.isoformat()}",
        )
