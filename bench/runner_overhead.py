"""How much does OnnxrtRunner.infer() add over calling onnxruntime directly?

Builds a MatMul+Relu chain sized so that one CPU inference takes about 10 ms, then times
``session.run`` on the runner's own session against ``runner.infer`` (feed validation
included) on the same feed, interleaved call by call so that machine noise hits both
alike. Prints min and median per call and the overhead ratio, then the paired
difference (each ``runner.infer`` call minus the ``session.run`` call next to it): its
median and interquartile range, in microseconds and as a share of ``session.run``'s
median. ``--rounds`` repeats the whole measurement (a fresh session each round) and ends
with the spread of the per-round figures. Target: under 5 %.

    .venv/bin/python bench/runner_overhead.py [--calls 200] [--rounds 5] [--target-ms 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pytest_polygraphy.runners import OnnxrtRunner


def chain_model(layers: int, width: int = 512, batch: int = 64) -> onnx.ModelProto:
    rng = np.random.RandomState(0)
    nodes, inits, prev = [], [], "x"
    for i in range(layers):
        w = (rng.normal(size=(width, width)) / np.sqrt(width)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]))
        nodes.append(helper.make_node("Relu", [f"m{i}"], [f"r{i}"]))
        prev = f"r{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def per_call_ms(fn, feed, repeats: int = 5) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn(feed)
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--target-ms", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()

    options = {"intra_op_num_threads": args.threads, "inter_op_num_threads": 1}
    feed = {"x": np.random.RandomState(1).rand(64, 512).astype(np.float32)}

    # size the chain so one inference takes about --target-ms
    with OnnxrtRunner(chain_model(4), session_options=options) as probe:
        per_call_ms(probe.infer, feed)  # warm up
        four_layers = per_call_ms(probe.infer, feed, repeats=20)
    layers = max(1, round(args.target_ms / (four_layers / 4)))
    model = chain_model(layers)

    print(f"{args.calls} interleaved calls per path, {args.threads} thread(s)\n")
    cases = (
        (f"~{args.target_ms:g} ms model: {layers} x (MatMul 64x512 @ 512x512 + Relu)", model),
        ("tiny model (fixed per-call cost): 1 x (MatMul + Relu)", chain_model(1)),
    )
    per_round: dict[str, list[float]] = {title: [] for title, _ in cases}
    for round_ in range(args.rounds):
        for title, m in cases:
            heading = title if args.rounds == 1 else f"{title}, round {round_ + 1}"
            per_round[title].append(report(heading, interleaved(m, feed, options, args.calls)))
    if args.rounds > 1:
        print(f"paired overhead of runner.infer over {args.rounds} rounds (median of each round)")
        for title, values in per_round.items():
            print(
                f"  {title}: median {statistics.median(values):+.2f} %, "
                f"rounds {min(values):+.2f} % .. {max(values):+.2f} %"
            )


def interleaved(model: onnx.ModelProto, feed, options, calls: int) -> dict[str, list[float]]:
    """Per-call ms of the three paths, alternating their order every call."""
    with OnnxrtRunner(model, session_options=options) as runner:
        session = runner.session
        names = [o.name for o in session.get_outputs()]
        paths = {
            "session.run": lambda f: session.run(names, f),
            "runner.infer": runner.infer,
            "runner.infer(check_feed=False)": lambda f: runner.infer(f, check_feed=False),
        }
        for _ in range(10):  # warm up every path
            for fn in paths.values():
                fn(feed)
        timings: dict[str, list[float]] = {label: [] for label in paths}
        for i in range(calls):
            order = list(paths.items())
            if i % 2:
                order.reverse()
            for label, fn in order:
                start = time.perf_counter()
                fn(feed)
                timings[label].append((time.perf_counter() - start) * 1e3)
    return timings


def report(title: str, timings: dict[str, list[float]]) -> float:
    """Print the table; return the median paired overhead of ``runner.infer`` in %."""
    base_min = min(timings["session.run"])
    base_med = statistics.median(timings["session.run"])
    print(title)
    print(f"  {'path':32} {'min ms':>9} {'median ms':>10} {'overhead min':>13} {'median':>8}")
    for label, values in timings.items():
        lo, med = min(values), statistics.median(values)
        print(
            f"  {label:32} {lo:9.3f} {med:10.3f} {(lo - base_min) / base_min * 100:+12.2f}% "
            f"{(med - base_med) / base_med * 100:+7.2f}%"
        )
    extra_us = (min(timings["runner.infer"]) - base_min) * 1e3
    print(f"  runner.infer adds {extra_us:.1f} us per call (best case)")
    paired = [
        (ours - bare) * 1e3
        for ours, bare in zip(timings["runner.infer"], timings["session.run"], strict=True)
    ]
    q1, median, q3 = statistics.quantiles(paired, n=4)
    share = median / (base_med * 1e3) * 100
    print(
        f"  paired difference: median {median:+.1f} us ({share:+.2f} % of session.run), "
        f"interquartile {q1:+.1f} .. {q3:+.1f} us\n"
    )
    return share


if __name__ == "__main__":
    main()
