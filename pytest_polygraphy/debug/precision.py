"""The precision session: the smallest set of nodes to keep in higher precision (fp32,
or fp16 with ``to="float16"``) for a failing reduced-precision test to pass, by name.

It knows ONNX, never pytest: the caller's ``check(Variant(keep_fp32=names))`` (or
``keep_fp16``) re-runs the failing test with those nodes kept (added to the test's own
list) and says GOOD when it passes. Keeping nodes in fp16 helps bf16, int8 and fp8 tests
only; an fp16 or fp32 test asked for it is a usage error. Steps:

1. the candidates: float compute nodes (``GraphIndex`` candidates, minus casts, and only
   nodes with a float output: no shape, constant or integer paths), not already kept;
2. the first check keeps every candidate: if the test still fails, the failure is not a
   precision problem, and the session says so;
3. ``search.peel`` finds the culprits: at most ``k * (ceil(log2 N) + 1)`` more checks for
   k independent culprits; stopped by ``max_checks`` it still returns a set that passed;
4. the answer, by node name (a node without one gets its stable id, ``models.nodes``), with
   the lines to paste (sidecar and command line), the passing model where one can be
   written (fp16: ``passing_fp16.onnx``; int8 with fp16 nodes:
   ``passing_int8_keep_fp16.onnx``, through ``save_passing``), and one more run of the test
   with that setting to confirm that it passes.

When the backend under test is TensorRT the caller also hands ``tensorrt_layers(nodes)``
(the runner's ``network_layers``: the layers each node becomes in the parsed network).
Nodes that become no layer (folded away by the parser) cannot be kept there and are no
candidates; the answer names each node's layers (also in ``keep_fp32.json`` or
``keep_fp16.json``), and
what the confirming run's engine said of the requested precisions (the check outcome's
``notes``: the precisions TensorRT ignored, read back from its engine inspector).
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from pytest_polygraphy.debug.blocks import GraphIndex
from pytest_polygraphy.debug.search import Nodes, Verdict, peel
from pytest_polygraphy.debug.session import (
    Check,
    CheckOutcome,
    DebugSession,
    SessionResult,
    Variant,
)
from pytest_polygraphy.errors import PolygraphyError
from pytest_polygraphy.models.shapes import FLOAT_TYPES

CAST_OPS = frozenset({"Cast", "CastLike"})
#: Answers longer than this are listed in part; keep_fp32.json holds them whole.
LISTED = 20


@dataclass(frozen=True)
class PrecisionOptions:
    """How to search (the ``--polygraphy-precision-*`` options)."""

    mode: str = "bisect"
    direction: str = "forward"
    max_checks: int | None = None
    replay: Path | None = None
    #: The precision the nodes are kept in: ``float32`` (keep_fp32) or ``float16`` (keep_fp16).
    to: str = "float32"

    @property
    def setting(self) -> str:
        """The setting that applies the answer: ``keep_fp32`` or ``keep_fp16``."""
        return "keep_fp16" if self.to == "float16" else "keep_fp32"


#: The precisions where keeping nodes in fp16 gains something.
BELOW_FP16 = ("bf16", "int8", "fp8")


def float_candidates(model: onnx.ModelProto, already: tuple[str, ...] = ()) -> list[str]:
    """The names (or stable ids) of the nodes worth keeping in fp32, in topological order."""
    from pytest_polygraphy.models.shapes import elem_type_of, inferred_value_infos

    index = GraphIndex(model)
    try:
        known = inferred_value_infos(model)
    except PolygraphyError:  # without inference every output counts as float
        known = {}
    found = []
    for i in index.candidates:
        node = index.nodes[i]
        if node.op_type in CAST_OPS or index.names[i] in already:
            continue
        types = {elem_type_of(known[name]) for name in node.output if name in known}
        if types and not types & FLOAT_TYPES:
            continue
        found.append(index.names[i])
    return found


class PrecisionSession(DebugSession):
    """One precision session for one failing test; ``run()`` returns its result."""

    kind = "precision"

    def __init__(
        self,
        name: str,
        model: str | Path | onnx.ModelProto,
        *,
        check: Check,
        folder: Path,
        precision: str,
        already_kept: tuple[str, ...] = (),
        kept_otherwise: tuple[str, ...] = (),
        options: PrecisionOptions | None = None,
        save_passing: Callable[[tuple[str, ...], Path], bool] | None = None,
        log: Callable[[str], None] = lambda line: None,
        tensorrt_layers: Callable[[Sequence[str]], Mapping[str, Sequence[str]]] | None = None,
    ) -> None:
        """``already_kept``: the test's own list of the setting the answer is for (the
        answer adds to it); ``kept_otherwise``: nodes the test keeps in the other precision.
        Neither is a candidate. ``save_passing(kept, path)`` writes the model a backend
        runs with ``kept`` in fp16 (int8: quantized with the test's calibration data) and
        says whether it could; only asked for with ``to="float16"``."""
        self.options = options or PrecisionOptions()
        super().__init__(name, check=check, folder=folder, replay=self.options.replay, log=log)
        self.model = model
        self.precision = precision
        self.already_kept = already_kept
        self.kept_otherwise = kept_otherwise
        self.save_passing = save_passing
        self.tensorrt_layers = tensorrt_layers
        #: ``{node: TensorRT layer names}`` of the candidates, when on TensorRT.
        self.layers: dict[str, list[str]] | None = None
        #: Why the layers are not listed (TensorRT could not parse the model...), if so.
        self.layers_unknown = ""

    def _variant(self, names: tuple[str, ...]) -> Variant:
        if self.options.to == "float16":
            return Variant(keep_fp16=names)
        return Variant(keep_fp32=names)

    def _keep(self, nodes: Nodes) -> tuple[str, ...]:
        return tuple(self.names[i] for i in nodes)

    def check_kept(self, nodes: Nodes) -> Verdict:
        return self._check_kept(nodes).verdict

    def _key(self, nodes: Nodes) -> str:
        to = "" if self.options.to == "float32" else f"{self.options.to}:"
        return f"keep:{to}{self.model_key}:{json.dumps(sorted(self._keep(nodes)))}"

    def _check_kept(self, nodes: Nodes) -> CheckOutcome:
        names = self._keep(nodes)
        return self.run_check(self._key(nodes), self._variant(names), _describe(names))

    def _run(self) -> SessionResult:
        from pytest_polygraphy.models import load_model, model_hash

        if self.precision not in ("fp16", "bf16", "int8", "fp8"):
            return self._result(
                "not a precision problem",
                f"the test runs at {self.precision}: there is no reduced precision to keep "
                "nodes out of (the precision session is for fp16, bf16, int8 and fp8 tests)",
            )
        if self.options.to == "float16" and self.precision not in BELOW_FP16:
            return self._result(
                "usage error",
                f"--polygraphy-precision-to float16 cannot help a {self.precision} test: its "
                "nodes already run in fp16 (or better), so keeping them in fp16 changes "
                "nothing. Use --polygraphy-precision-to float32 (the default) for it; float16 "
                "is for bf16, int8 and fp8 tests",
            )
        model = load_model(self.model)
        self.model_key = model_hash(model)
        self.names = float_candidates(model, (*self.already_kept, *self.kept_otherwise))
        dropped = self._drop_nodes_without_layers()
        n = len(self.names)
        if n == 0:
            return self._result(
                "error", "cannot search: the model has no float compute nodes" + dropped
            )
        # The progress bound is that of the culprits found so far plus one more: one round
        # of at most ceil(log2 N) + 1 checks each (and the first check).
        step = math.ceil(math.log2(n)) + 1 if n > 1 else 1
        self.bound = 1 + step
        everything = tuple(range(n))
        kept_all = self._check_kept(everything)
        if self.journal.crashed_before(self._key(everything)):
            return self._result(
                "error",
                f"cannot search: the check with all {n} float compute nodes kept in "
                f"{self._in} never ended in an earlier run of this session (killed, or "
                f"crashing the process), and the search starts from it; remove "
                f"{self.folder} to start over",
            )
        if kept_all.verdict is not Verdict.GOOD:
            why = f" ({kept_all.detail})" if kept_all.detail else ""
            return self._result(
                "not a precision problem",
                f"not a precision problem: with all {n} float compute nodes kept in {self._in} "
                f"the test still fails{why}, so no set of nodes kept in {self._in} makes it "
                "pass",
            )
        budget = None if self.options.max_checks is None else self.options.max_checks - 1
        result = peel(
            n,
            self.check_kept,
            mode=self.options.mode,
            direction=self.options.direction,
            max_checks=budget,
            known={everything: Verdict.GOOD, (): Verdict.BAD},
            on_culprit=lambda _: self._raise_bound(step),
        )
        return self._finish(model, result.keep, result.finished, dropped)

    def _raise_bound(self, step: int) -> None:
        self.bound += step

    @property
    def _in(self) -> str:
        return "fp16" if self.options.to == "float16" else "fp32"

    def _drop_nodes_without_layers(self) -> str:
        """On TensorRT: list each candidate's layers, and drop the candidates that become
        none (keep_fp32 cannot apply to them). Returns what to say about the dropped."""
        if self.tensorrt_layers is None:
            return ""
        try:
            found = self.tensorrt_layers(self.names)
        except PolygraphyError as err:
            self.layers_unknown = f"{type(err).__name__}: {err}"
            return ""
        self.layers = {name: list(found.get(name, ())) for name in self.names}
        none = [name for name in self.names if not self.layers[name]]
        if not none:
            return ""
        self.names = [name for name in self.names if self.layers[name]]
        shown = ", ".join(none[:LISTED]) + (
            f" and {len(none) - LISTED} more" if len(none) > LISTED else ""
        )
        return (
            f"\n{len(none)} float compute nodes become no TensorRT layer (folded away by the "
            f"parser), so they cannot be kept in {self._in} and are not candidates: {shown}"
        )

    def _finish(
        self, model: onnx.ModelProto, nodes: Nodes, finished: bool, dropped: str = ""
    ) -> SessionResult:
        names = self._keep(nodes)
        setting = self.options.setting
        every = (*self.already_kept, *names)
        confirm = self._check(self._variant(names))
        ops = dict(zip(self.names, self._op_types(model), strict=True))
        lines = [
            f"keep in {self._in}: {len(names)} of {len(self.names)} float compute nodes"
            + (
                ""
                if finished
                else " (stopped at --polygraphy-max-checks: a set that passes, "
                "not necessarily the smallest)"
            )
        ]
        lines += [
            f"  {name} ({ops.get(name, '?')}){self._layers_of(name)}" for name in names[:LISTED]
        ]
        if len(names) > LISTED:
            lines.append(f"  ... and {len(names) - LISTED} more (all in {setting}.json)")
        if self.layers_unknown:
            lines.append(f"TensorRT layers not listed: {self.layers_unknown}")
        if dropped:
            lines.append(dropped.strip())
        from pytest_polygraphy.files import write_bytes_atomically

        answer: dict[str, object] = {setting: list(every)}
        if self.layers is not None:
            answer["tensorrt_layers"] = {name: self.layers.get(name, []) for name in names}
            answer["tensorrt_readback"] = list(confirm.notes)
        listing = json.dumps(answer, indent=1).encode()
        write_bytes_atomically(self.folder / f"{setting}.json", listing)
        if len(every) > LISTED:
            lines.append(f"sidecar: the {setting} key of {self.folder / f'{setting}.json'}")
        else:
            lines.append(f'sidecar: "{setting}": {json.dumps(list(every))}')
            lines.append(
                f"command line (after the paths): --polygraphy-{setting.replace('_', '-')} "
                + " ".join(shlex.quote(name) for name in every)
            )
        saved = self._save_passing(model, every)
        if saved is not None:
            lines.append(f"passing model: {saved}")
        passes = "passes" if confirm.verdict is Verdict.GOOD else "does NOT pass"
        lines.append(f"confirmed: the test {passes} with this setting ({confirm.verdict.value})")
        if confirm.notes:
            lines.append("read back from the confirming run's TensorRT engine:")
            lines += [f"  {note}" for note in confirm.notes]
        return self._result(
            "found" if finished else "stopped",
            "\n".join(lines),
            nodes=[(name, ops.get(name, "?")) for name in names],
            reproduces=confirm.verdict is Verdict.GOOD,
        )

    def _layers_of(self, name: str) -> str:
        """`` -> TensorRT layers: a, b`` for a node, on TensorRT; else nothing."""
        if self.layers is None:
            return ""
        layers = self.layers.get(name, [])
        if not layers:
            return " -> no TensorRT layer (folded away by the parser)"
        return " -> TensorRT layers: " + ", ".join(layers)

    def _op_types(self, model: onnx.ModelProto) -> list[str]:
        index = GraphIndex(model)
        by_name = {index.names[i]: index.nodes[i].op_type for i in range(len(index.nodes))}
        return [by_name.get(name, "?") for name in self.names]

    def _save_passing(self, model: onnx.ModelProto, keep: tuple[str, ...]) -> Path | None:
        """The fp16 model with ``keep`` in fp32 (what an fp16 backend runs), or the model
        with ``keep`` in fp16 that ``save_passing`` writes; None when there is none."""
        if self.options.to == "float16":
            path = self.folder / f"passing_{self.precision}_keep_fp16.onnx"
            saver = self.save_passing
            return path if saver is not None and saver(keep, path) else None
        if self.precision != "fp16":
            return None
        import warnings

        from pytest_polygraphy.models import convert_to_fp16, save_model

        path = self.folder / "passing_fp16.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            save_model(convert_to_fp16(model, block_list=keep), path)
        return path


def _describe(names: tuple[str, ...]) -> str:
    if len(names) <= 3:
        return "keeping " + (", ".join(names) or "nothing")
    return f"keeping {len(names)} nodes ({names[0]} .. {names[-1]})"
