"""ONNX test-case directories, laid out as onnx's backend tests lay them out::

    minimal_failing/
      model.onnx
      test_data_set_0/input_0.pb, input_1.pb, ..., output_0.pb, ...
      test_data_set_1/...

One ``test_data_set_<i>`` per input sample; inputs and outputs in the model's order, each a
``TensorProto`` named after its tensor. Written to a temporary folder, then renamed, so a
reader never sees half a directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from pytest_polygraphy.files import current_umask
from pytest_polygraphy.models import save_model


def write_test_case(
    folder: Path,
    model: onnx.ModelProto,
    inputs: Sequence[Mapping[str, Any]],
    outputs: Sequence[Mapping[str, Any]],
) -> Path:
    """Write ``model`` with each sample's inputs and expected outputs to ``folder``
    (replacing a previous one). Returns ``folder``."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp's 0700 hides the folder from others
        save_model(model, tmp / "model.onnx")
        input_names = [value.name for value in model.graph.input]
        output_names = [value.name for value in model.graph.output]
        for index, (feed, expected) in enumerate(zip(inputs, outputs, strict=True)):
            data = tmp / f"test_data_set_{index}"
            data.mkdir()
            for kind, names, values in (
                ("input", input_names, feed),
                ("output", output_names, expected),
            ):
                for position, name in enumerate(names):
                    if name not in values:
                        continue
                    tensor = numpy_helper.from_array(np.asarray(values[name]), name)
                    (data / f"{kind}_{position}.pb").write_bytes(tensor.SerializeToString())
        if folder.exists():
            old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.old."))
            os.replace(folder, old / folder.name)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def read_test_case(
    folder: Path,
) -> tuple[onnx.ModelProto, list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """``(model, inputs per sample, expected outputs per sample)`` of a test-case folder."""
    model = onnx.load(str(folder / "model.onnx"))
    inputs: list[dict[str, np.ndarray]] = []
    outputs: list[dict[str, np.ndarray]] = []
    sets = sorted(
        (p for p in folder.iterdir() if p.name.startswith("test_data_set_")),
        key=lambda p: int(p.name.rsplit("_", 1)[1]),
    )
    for data in sets:
        for kind, into in (("input", inputs), ("output", outputs)):
            values: dict[str, np.ndarray] = {}
            files = sorted(data.glob(f"{kind}_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
            for path in files:
                tensor = onnx.TensorProto()
                tensor.ParseFromString(path.read_bytes())
                values[tensor.name] = numpy_helper.to_array(tensor)
            into.append(values)
    return model, inputs, outputs
