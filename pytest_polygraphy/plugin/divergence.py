"""First divergence under ``--polygraphy-mark-all``: which tensor goes wrong first.

Every intermediate tensor both sides hold is compared, in the model's topological order
(``debug.blocks.topological_indices``), with the test's own compare function and
tolerances, in batches whose size keeps the arrays of one batch (both sides) under
``BATCH_BYTES``: never every tensor of a large model at once. The sides are any the test
compares: ONNX Runtime against the reference, a precision against fp32, or a golden file
that holds intermediates (written under ``--polygraphy-mark-all``).

The answer is the earliest tensor whose error exceeds the tolerance on the way to the
failing output (its producing node's name and op type, its error), and how the error
grows along the shortest path from it to that output. The terminal gets that summary;
the table of every tensor goes to the report (``DIVERGENCE_PROPERTY`` on the item's
user_properties, read by ``report.ReportPlugin``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pytest_polygraphy.plugin.table import format_number

#: Bytes of both sides' arrays of one batch; the first batch is BATCH_START tensors.
BATCH_BYTES = 256 << 20
BATCH_START = 32
#: Points of the growth shown in the terminal (the report has them all).
TERMINAL_POINTS = 8

Fetch = Callable[[Sequence[str]], Mapping[str, Any]]


@dataclass
class TensorError:
    """One compared tensor: where it is made and how far apart the sides are."""

    position: int
    tensor: str
    node: str
    op: str
    max_absdiff: float | None
    max_reldiff: float | None
    mismatch_count: int | None
    total: int | None
    passed: bool
    note: str = ""


@dataclass
class GraphOrder:
    """What the scan needs of the model's graph: tensors in topological order, each with
    its producing node, and each node's inputs."""

    tensors: list[str]
    producer: dict[str, tuple[str, str]]
    inputs_of: dict[str, list[str]]

    @classmethod
    def of(cls, model: Any) -> GraphOrder:
        import onnx

        from pytest_polygraphy.debug.blocks import topological_indices
        from pytest_polygraphy.models.nodes import node_id

        if isinstance(model, onnx.ModelProto):
            proto = model
        else:
            proto = onnx.load(str(model), load_external_data=False)
        tensors: list[str] = []
        producer: dict[str, tuple[str, str]] = {}
        inputs_of: dict[str, list[str]] = {}
        nodes = list(proto.graph.node)
        for index in topological_indices(proto.graph):
            node = nodes[index]
            label = node_id(index, node)
            for name in node.output:
                if name:
                    tensors.append(name)
                    producer[name] = (label, node.op_type)
                    inputs_of[name] = [i for i in node.input if i]
        return cls(tensors, producer, inputs_of)

    def path(self, source: str, target: str) -> list[str] | None:
        """The shortest chain of tensors from ``source`` to ``target`` (both included),
        or None when ``target`` does not depend on ``source``."""
        parent: dict[str, str | None] = {target: None}
        queue = deque([target])
        while queue:
            name = queue.popleft()
            if name == source:
                chain = [name]
                while parent[chain[-1]] is not None:
                    chain.append(parent[chain[-1]])  # type: ignore[arg-type]
                return chain
            for upstream in self.inputs_of.get(name, ()):
                if upstream not in parent:
                    parent[upstream] = name
                    queue.append(upstream)
        return None


def scan(
    order: GraphOrder,
    names: Sequence[str],
    expected: Fetch,
    actual: Fetch,
    compare_func: Any,
    batch_bytes: int = BATCH_BYTES,
) -> list[TensorError]:
    """Compare ``names`` (tensors both sides hold) in topological order, batch by batch:
    ``expected(batch)`` and ``actual(batch)`` return those tensors' arrays. The next
    batch's size follows the largest tensor seen, so a batch stays under ``batch_bytes``."""
    from pytest_polygraphy.errors import OutputMismatchError

    wanted = set(names)
    ordered = [name for name in order.tensors if name in wanted]
    position = {name: i for i, name in enumerate(order.tensors)}
    table: list[TensorError] = []
    largest = 1
    start, size = 0, BATCH_START
    while start < len(ordered):
        batch = ordered[start : start + size]
        want = dict(expected(batch))
        got = dict(actual(batch))
        largest = max([largest, *(_nbytes(want.get(n)) + _nbytes(got.get(n)) for n in batch)])
        result: Mapping[str, Any]
        try:
            result = compare_func(got, want)
        except OutputMismatchError as err:  # a side without some tensor: say so per tensor
            result, note = {}, str(err)
        else:
            note = ""
        for name in batch:
            node, op = order.producer.get(name, ("", ""))
            output = result.get(name)
            if output is None:
                table.append(
                    TensorError(position[name], name, node, op, None, None, None, None, True,
                                note or "not compared")
                )  # fmt: skip
                continue
            table.append(
                TensorError(
                    position=position[name],
                    tensor=name,
                    node=node,
                    op=op,
                    max_absdiff=_float(getattr(output, "max_absdiff", None)),
                    max_reldiff=_float(getattr(output, "max_reldiff", None)),
                    mismatch_count=_int(getattr(output, "mismatch_count", None)),
                    total=_int(getattr(output, "total", None)),
                    passed=bool(output.passed),
                )
            )
        del want, got, result
        start += len(batch)
        size = max(1, batch_bytes // largest)
    return table


def _nbytes(value: Any) -> int:
    return int(getattr(value, "nbytes", 0) or 0)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def find(
    order: GraphOrder, table: Sequence[TensorError], failing_outputs: Sequence[str]
) -> dict[str, Any]:
    """The first divergence and its growth: ``{"first", "earliest", "output", "path",
    "failed", "compared"}``. ``first`` is the earliest failing tensor the first failing
    output depends on (None when nothing failed); ``earliest`` the earliest failing
    tensor of all, when it differs."""
    by_name = {row.tensor: row for row in table}
    failing = [row for row in table if not row.passed]
    result: dict[str, Any] = {
        "first": None,
        "earliest": None,
        "output": None,
        "path": [],
        "failed": len(failing),
        "compared": sum(1 for row in table if row.max_absdiff is not None or not row.passed),
    }
    if not failing:
        return result
    target = next((name for name in failing_outputs if name in by_name), failing[-1].tensor)
    first = None
    chain: list[str] | None = None
    for row in failing:
        chain = order.path(row.tensor, target)
        if chain is not None:
            first = row
            break
    if first is None:
        first, chain = failing[0], [failing[0].tensor]
    assert chain is not None
    result["first"] = asdict(first)
    result["output"] = target
    result["path"] = [asdict(by_name[name]) for name in chain if name in by_name]
    if failing[0] is not first:
        result["earliest"] = asdict(failing[0])
    return result


def summary(found: Mapping[str, Any], header: str, tolerances: tuple[Any, Any]) -> str:
    """The terminal's lines for one divergence (the table goes to the report)."""
    rtol, atol = tolerances
    total = found.get("compared", 0)
    first = found.get("first")
    if first is None:
        return f"{header}: no intermediate tensor exceeds the tolerance ({total} compared)"
    lines = [
        f"{header}: {found['failed']} of {total} compared tensors exceed the tolerance",
        f"  first divergence: tensor {first['tensor']!r}, made by node {first['node']!r} "
        f"({first['op']}), number {first['position'] + 1} in topological order",
        f"    max_absdiff {format_number(first['max_absdiff'])} (atol {format_number(atol)}), "
        f"max_reldiff {format_number(first['max_reldiff'])} (rtol {format_number(rtol)}), "
        f"{_mismatches(first)} elements out of tolerance",
    ]
    earliest = found.get("earliest")
    if earliest:
        lines.append(
            f"  (an earlier tensor, {earliest['tensor']!r} of node {earliest['node']!r} "
            f"({earliest['op']}), also exceeds it, off the path to {found['output']!r})"
        )
    path = found.get("path") or []
    if len(path) > 1:
        lines.append(
            f"  growth along the path to output {found['output']!r} ({len(path)} tensors):"
        )
        lines += [f"    {_point(row)}" for row in _spread(path, TERMINAL_POINTS)]
    lines.append(
        "  every tensor's error, and the growth as a chart: in the report (--polygraphy-report)"
    )
    return "\n".join(lines)


def _mismatches(row: Mapping[str, Any]) -> str:
    count, total = row.get("mismatch_count"), row.get("total")
    return "-" if count is None else f"{count}/{'-' if total is None else total}"


def _point(row: Mapping[str, Any]) -> str:
    absdiff, reldiff = format_number(row["max_absdiff"]), format_number(row["max_reldiff"])
    return (
        f"#{row['position'] + 1:<5} {row['op']:<18} max_absdiff {absdiff:>9}  "
        f"max_reldiff {reldiff:>9}  {row['tensor']}"
    )


def _spread(rows: Sequence[Any], count: int) -> list[Any]:
    """At most ``count`` rows, evenly spaced, the first and the last included."""
    if len(rows) <= count:
        return list(rows)
    picks = sorted({round(i * (len(rows) - 1) / (count - 1)) for i in range(count)})
    return [rows[i] for i in picks]
