"""Loading, saving and hashing models, external data included."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from pytest_polygraphy.errors import ModelError
from pytest_polygraphy.models import load_model, model_hash, save_model
from tests.models import builders
from tests.models.helpers import run_ort


def test_external_data_is_loaded_relative_to_the_model(tmp_path: Path, monkeypatch) -> None:
    path = builders.external_data_model(tmp_path / "deep" / "folder")
    monkeypatch.chdir(tmp_path)  # the data must be found next to the model, not in the cwd
    model = load_model(path)
    expected = {
        init.name: numpy_helper.to_array(init)
        for init in builders.matmul_softmax().graph.initializer
    }
    loaded = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    assert loaded.keys() == expected.keys()
    for name, values in expected.items():
        np.testing.assert_array_equal(loaded[name], values)
    feed = builders.random_feed(model)
    np.testing.assert_array_equal(
        run_ort(model, feed)["probs"], run_ort(builders.matmul_softmax(), feed)["probs"]
    )


def test_external_data_of_a_text_format_model_is_loaded(tmp_path: Path) -> None:
    """Where the file is not binary protobuf (onnx picks the format by extension), the
    quick test for external tensors on the file's bytes does not apply: every tensor is
    looked at, and the data is read."""
    binary = builders.external_data_model(tmp_path)
    text = tmp_path / "model.txtpb"
    onnx.save(onnx.load(binary, load_external_data=False), text)
    assert b"EXTERNAL" in text.read_bytes()
    loaded = {i.name: numpy_helper.to_array(i) for i in load_model(text).graph.initializer}
    for init in builders.matmul_softmax().graph.initializer:
        np.testing.assert_array_equal(loaded[init.name], numpy_helper.to_array(init))


def test_a_model_proto_is_returned_as_is() -> None:
    model = builders.conv_chain()
    assert load_model(model) is model


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"nowhere.onnx.*does not exist"):
        load_model(tmp_path / "nowhere.onnx")


@pytest.mark.parametrize("content", [b"\x0a\xff\xff\xff\xff\xff garbage", b""])
def test_corrupt_or_empty_file_names_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=r"broken.onnx"):
        load_model(path)


def test_missing_external_data_names_the_data_file(tmp_path: Path) -> None:
    path = builders.external_data_model(tmp_path)
    (tmp_path / "model.data").unlink()
    with pytest.raises(ModelError, match=r"model\.data.*does not exist"):
        load_model(path)


def test_truncated_external_data_is_an_error(tmp_path: Path) -> None:
    path = builders.external_data_model(tmp_path)
    with open(tmp_path / "model.data", "r+b") as file:
        file.truncate(16)
    with pytest.raises(ModelError, match=r"model.onnx"):
        load_model(path)
    with pytest.raises(ModelError, match=r"model.data"):
        model_hash(path)


def test_metadata_only_load_does_not_need_the_data(tmp_path: Path) -> None:
    path = builders.external_data_model(tmp_path)
    (tmp_path / "model.data").unlink()
    model = load_model(path, load_external_data=False)
    assert [value.name for value in model.graph.input] == ["x"]


def test_hash_of_a_path_equals_hash_of_the_loaded_model(tmp_path: Path) -> None:
    path = builders.external_data_model(tmp_path)
    assert model_hash(path) == model_hash(load_model(path))
    inline = tmp_path / "inline.onnx"
    onnx.save(builders.matmul_softmax(), inline)
    assert model_hash(inline) == model_hash(path)


def test_hash_is_the_same_in_another_folder_and_with_another_data_name(tmp_path: Path) -> None:
    first = builders.external_data_model(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert model_hash(first) == model_hash(tmp_path / "b" / "model.onnx")
    onnx.save(
        builders.mixed_chain(),
        tmp_path / "one.onnx",
        save_as_external_data=True,
        location="one.data",
        size_threshold=0,
    )
    save_model(builders.mixed_chain(), tmp_path / "two.onnx", external_data=True)
    assert (tmp_path / "two.onnx.data").exists()
    assert model_hash(tmp_path / "one.onnx") == model_hash(tmp_path / "two.onnx")


def test_editing_external_data_changes_the_hash(tmp_path: Path) -> None:
    path = builders.external_data_model(tmp_path)
    before = model_hash(path)
    data = bytearray((tmp_path / "model.data").read_bytes())
    data[-1] ^= 0x01
    (tmp_path / "model.data").write_bytes(bytes(data))
    assert model_hash(path) != before


def test_hash_tells_graphs_and_weights_apart() -> None:
    base = builders.matmul_softmax()
    other_weights = builders.matmul_softmax()
    other_weights.graph.initializer[0].raw_data = bytes(len(base.graph.initializer[0].raw_data))
    other_graph = builders.matmul_softmax()
    other_graph.graph.node[2].op_type = "Relu"
    del other_graph.graph.node[2].attribute[:]
    hashes = {model_hash(model) for model in (base, other_weights, other_graph)}
    assert len(hashes) == 3
    assert model_hash(builders.matmul_softmax()) == model_hash(base)


def test_hashing_a_proto_leaves_it_unchanged() -> None:
    model = builders.conv_chain()
    before = model.SerializeToString(deterministic=True)
    model_hash(model)
    assert model.SerializeToString(deterministic=True) == before


def test_hash_refuses_unloaded_external_data(tmp_path: Path) -> None:
    path = builders.external_data_model(tmp_path)
    with pytest.raises(ModelError, match=r"never loaded"):
        model_hash(onnx.load(path, load_external_data=False))


def test_save_model_round_trips_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    model = builders.conv_chain()
    target = tmp_path / "out" / "model.onnx"
    save_model(model, target)
    assert os.listdir(tmp_path / "out") == ["model.onnx"]
    assert load_model(target).SerializeToString() == model.SerializeToString()
    save_model(builders.matmul_softmax(), target)  # replaces the previous file
    assert model_hash(target) == model_hash(builders.matmul_softmax())


def test_save_model_with_external_data_keeps_the_argument_inline(tmp_path: Path) -> None:
    model = builders.mixed_chain()
    before = model.SerializeToString()
    save_model(model, tmp_path / "m.onnx", external_data=True)
    assert model.SerializeToString() == before
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m.onnx.data"]
    assert model_hash(tmp_path / "m.onnx") == model_hash(model)


def test_save_model_refuses_unloaded_external_data(tmp_path: Path) -> None:
    path = builders.external_data_model(tmp_path / "src")
    with pytest.raises(ModelError, match=r"never loaded"):
        save_model(onnx.load(path, load_external_data=False), tmp_path / "copy.onnx")


def test_a_truncated_file_without_a_graph_names_the_file(tmp_path: Path) -> None:
    """The first bytes of a model parse as a ModelProto that has an ir_version and no graph:
    an error, never a model that runs and produces nothing."""
    data = builders.conv_chain().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[:2])
    assert not onnx.load(str(path)).HasField("graph")
    with pytest.raises(ModelError, match=r"cut\.onnx' has no graph: .*truncated"):
        load_model(path)
