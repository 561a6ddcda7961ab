"""What the benchmarks share: the real PaddleOCR models, seeded inputs, timing a tool's
command in a clean environment (the debug-session benchmarks, ``reduce.py`` and
``precision.py``), and the result tables (those two and ``compare.py``).

Not a benchmark itself; the scripts import it from their own folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: Real models, installed as data only (gitignored).
MODELS = HERE / ".models"
OCR_WHEEL = "rapidocr-onnxruntime"
SEED = 0


def ocr_models() -> list[Path]:
    """The PaddleOCR models of the rapidocr wheel, installed on first use."""
    found = sorted(MODELS.glob("rapidocr_onnxruntime/models/*.onnx"))
    if not found:
        print(f"installing {OCR_WHEEL} (no deps) into {MODELS} ...", file=sys.stderr, flush=True)
        command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target"]
        subprocess.run([*command, MODELS, OCR_WHEEL], check=True)
        found = sorted(MODELS.glob("rapidocr_onnxruntime/models/*.onnx"))
    if not found:
        raise RuntimeError(f"no .onnx model in {MODELS}/rapidocr_onnxruntime/models")
    return found


def input_array(shape: tuple[int, ...]) -> Any:
    """Uniform [0, 1) float32 values from the fixed seed."""
    import numpy as np

    return np.random.default_rng(SEED).random(shape, dtype=np.float32)


def tool_env(work: Path, **extra: str) -> dict[str, str]:
    """Both sides' environment: Python's default bytecode caching, whatever this shell
    says (PYTHONDONTWRITEBYTECODE=1 would make pytest re-rewrite and recompile ~150
    modules on every run, seconds that no user pays), with every cache file under the work
    folder (nothing written next to the venvs' sources)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return {**env, **extra}


def timed(command: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> float:
    """Seconds ``command`` took, its output in ``log``; RuntimeError unless pytest's exit
    status is 0 or 1 (a test failed, as it should)."""
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as stream:
        done = subprocess.run(
            command, cwd=cwd, stdout=stream, stderr=subprocess.STDOUT, env=env, text=True
        )
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"exit status {done.returncode}: {' '.join(command)}\n{tail}")
    return seconds


def exact_chain(
    total: int,
    at: list[int],
    plant: Callable[[int, str, str], list[Any]],
    constant: Callable[[str, float], str],
) -> list[Any]:
    """The nodes of a chain from ``x`` to ``y`` of about ``total`` nodes, each exact in
    fp16 for values in [0, 1] (``Neg`` then ``Abs``, ``Relu``, ``Mul`` by 0.5 and by 2,
    their constants named by ``constant(name, value)``), with ``plant(k, previous, out)``
    (the planted nodes, reading ``previous`` and ending in ``out``) inserted at the first
    position at or past each of ``at``, in order. The benches plant their faults here."""
    from onnx import helper

    cycle = ("Neg", "Relu", "MulHalf", "MulTwo")
    pending = sorted(at)
    nodes: list[Any] = []
    previous = "x"
    i = 0
    while len(nodes) < total - 1:
        out = f"t{len(nodes)}"
        if pending and len(nodes) >= pending[0]:
            pending.pop(0)
            nodes += plant(len(at) - len(pending) - 1, previous, out)
        else:
            op = cycle[i % len(cycle)]
            i += 1
            name = f"n{len(nodes)}"
            if op == "MulHalf":
                half = constant(f"{name}_half", 0.5)
                nodes.append(helper.make_node("Mul", [previous, half], [out], name))
            elif op == "MulTwo":
                two = constant(f"{name}_two", 2.0)
                nodes.append(helper.make_node("Mul", [previous, two], [out], name))
            elif op == "Neg" and len(nodes) + 2 < total - 1:  # Neg, Abs: back in [0, 1]
                nodes.append(helper.make_node("Neg", [previous], [out], name))
                previous = out
                out = f"t{len(nodes)}"
                nodes.append(helper.make_node("Abs", [previous], [out], f"n{len(nodes)}"))
            else:
                nodes.append(helper.make_node(op, [previous], [out], name))
        previous = out
    nodes.append(helper.make_node("Identity", [previous], ["y"], "output"))
    return nodes


def render_table(rows: list[tuple[str, ...]]) -> str:
    """``rows`` (the header first) as left-aligned columns two spaces apart, a rule of
    dashes under the header, trailing spaces trimmed."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
