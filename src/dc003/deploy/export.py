"""Each tower to its own ONNX graph: dynamic batch and history-length axes, pinned opset, FP16 copy.

The TorchScript exporter (``dynamo=False``) is used: on these towers it gives the same graph as the dynamo
exporter (both checked against PyTorch) in ~0.5 s instead of ~15 s. It traces one example, so the example
history is 3 long (no size-1 axis that could be specialised) and the tower's ``if length:`` branch for an
empty history is traced as the non-empty one; serving feeds an empty history as one padded slot
(:mod:`dc003.deploy.serving`), which is the same computation. NaN numericals (missing age) are imputed
inside the graph (``IsNaN`` + ``Where``), so no separate mask input is needed.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from dc003.deploy import layout
from dc003.io import atomic_path

if TYPE_CHECKING:
    import onnx
    from torch import nn

    from dc003.model.two_tower import TwoTowerModel


def _export(
    module: nn.Module,
    args: tuple[object, ...],
    inputs: tuple[str, ...],
    output: str,
    dynamic: dict[str, dict[int, str]],
    path: Path,
    opset: int,
) -> None:
    import torch

    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about the python branches named above
        torch.onnx.export(
            module,
            args,
            str(tmp),
            dynamo=False,
            opset_version=opset,
            input_names=list(inputs),
            output_names=[output],
            dynamic_axes=dynamic,
            do_constant_folding=True,
        )


def export_user_tower(model: TwoTowerModel, path: Path, opset: int) -> None:
    import torch

    cfg = model.config.user_tower
    b, length = 2, 3
    numerical = torch.zeros(b, len(cfg.numerical))
    numerical[0, 0] = float("nan")
    args = (
        torch.zeros(b, len(cfg.categorical), dtype=torch.long),
        numerical,
        torch.zeros(b, length, dtype=torch.long),
        torch.tensor([[False, False, True], [False, True, True]]),
    )
    dynamic = {
        "categorical": {0: "batch"},
        "numerical": {0: "batch"},
        "history": {0: "batch", 1: "history_length"},
        "history_padding": {0: "batch", 1: "history_length"},
        layout.USER_OUTPUT: {0: "batch"},
    }
    model.eval()
    _export(model.user_tower, args, layout.USER_INPUTS, layout.USER_OUTPUT, dynamic, path, opset)


def export_item_tower(model: TwoTowerModel, path: Path, opset: int) -> None:
    import torch

    cfg = model.config.item_tower
    b = 2
    text_dim = cfg.text[0].embedding_dim
    args = (
        torch.zeros(b, len(cfg.categorical), dtype=torch.long),
        torch.zeros(b, len(cfg.numerical)),
        torch.zeros(b, len(cfg.text), text_dim),
    )
    dynamic = {name: {0: "batch"} for name in (*layout.ITEM_INPUTS, layout.ITEM_OUTPUT)}
    model.eval()
    _export(model.item_tower, args, layout.ITEM_INPUTS, layout.ITEM_OUTPUT, dynamic, path, opset)


def to_fp16(src: Path, dst: Path) -> None:
    """FP16 weights and arithmetic, FP32 inputs and outputs (``keep_io_types``).

    onnxruntime's own converter: onnxconverter-common 1.16 crashes on these graphs (its cast-removal pass
    meets a cast feeding several nodes). Its default block list keeps the ops ORT's CPU provider has no
    FP16 kernel for in FP32, with casts around them."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    _sort_nodes(model.graph)  # the converter appends its input casts at the end of the node list
    with atomic_path(dst) as tmp:
        onnx.save(model, str(tmp))


def _sort_nodes(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` topologically (stable: the original order wherever it already works)."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        rest = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ValueError(f"graph has a cycle or a missing input at node {rest[0].name!r}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def to_int8(src: Path, dst: Path) -> None:
    """Dynamic quantisation: MatMul/Gemm weights stored int8, activations quantised per call. Embedding
    tables, layer norms and attention arithmetic stay FP32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with atomic_path(dst) as tmp:
        quantize_dynamic(
            str(src), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"]
        )


def export_towers(
    model: TwoTowerModel, out_dir: Path, opset: int, fp16: bool, int8: bool = False
) -> dict[str, Path]:
    """Write the towers; return ``{"<precision>/<tower>": path}`` (``fp32/user``, ``fp16/item``, ...)."""
    import onnx

    files: dict[str, Path] = {}
    user32, item32 = (out_dir / f for f in layout.tower_files("fp32", fp16))
    export_user_tower(model, user32, opset)
    export_item_tower(model, item32, opset)
    files["fp32/user"], files["fp32/item"] = user32, item32
    if fp16:
        user16, item16 = out_dir / layout.USER_TOWER, out_dir / layout.ITEM_TOWER
        to_fp16(user32, user16)
        to_fp16(item32, item16)
        files["fp16/user"], files["fp16/item"] = user16, item16
    if int8:
        user8, item8 = (out_dir / f for f in layout.tower_files("int8", fp16))
        to_int8(user32, user8)
        to_int8(item32, item8)
        files["int8/user"], files["int8/item"] = user8, item8
    for path in files.values():
        onnx.checker.check_model(str(path))
    return files
