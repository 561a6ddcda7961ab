"""Reading requested layer precisions back from TensorRT's engine inspector: parsing and
matching only (``runners.trt_precisions`` is pure; no TensorRT needed).

The inspector JSON below is TensorRT's own output, shortened to a few whole layers:

* ``RESNET_FP16`` and ``RESNET_FP32``: NVIDIA/TensorRT,
  tools/experimental/trt-engine-explorer/examples/pytorch/resnet/A100/{fp16,fp32}/
  resnet.onnx.engine.graph.json (commits 768d994b7305 and 8fe05393fed8), the engine
  information (``LayerInformationFormat.JSON``, ``ProfilingVerbosity.DETAILED``) of a
  ResNet built by trtexec;
* ``MOBILENET_INT8``: the same tool's tests/inputs/mobilenet.qat.onnx.engine.graph.json
  (commit 8fe05393fed8), a QAT MobileNet with a pointwise fusion (``PWN(...)``);
* ``NAMES_ONLY``: src/notebooks/layer_info.json (commit 8e44926682e2), an engine built
  with the default ``ProfilingVerbosity.LAYER_NAMES_ONLY``: names only, with nested
  pointwise fusions and a Myelin region (``{ForeignNode[...]}``).

``METADATA_LAYER`` is written here, not taken from TensorRT: TensorRT 10's ONNX parser
records ``[ONNX Layer: <node>]`` in each layer's metadata (as ``trt_build.layers_of_nodes``
reads it), and the samples above predate that field.
"""

from __future__ import annotations

import json

from pytest_polygraphy.runners.trt_precisions import (
    check_precisions,
    datatype_of,
    fused_parts,
    parse_engine_information,
    parse_layer_information,
)

RESNET_FP16 = """{"Layers": [{
  "Name": "Reformatting CopyNode for Input Tensor 0 to Conv_0 + Relu_1",
  "LayerType": "Reformat",
  "Inputs": [
  {
    "Name": "input.1",
    "Location": "Device",
    "Dimensions": [32,3,224,224],
    "Format/Datatype": "Row major linear FP32"
  }],
  "Outputs": [
  {
    "Name": "Reformatted Input Tensor 0 to Conv_0 + Relu_1",
    "Location": "Device",
    "Dimensions": [32,3,224,224],
    "Format/Datatype": "Channel major FP16 format where channel % 4 == 0"
  }],
  "ParameterType": "Reformat",
  "Origin": "REFORMAT",
  "TacticValue": "0x0000000000000000"
},{
  "Name": "Conv_0 + Relu_1",
  "LayerType": "CaskConvolution",
  "Inputs": [
  {
    "Name": "Reformatted Input Tensor 0 to Conv_0 + Relu_1",
    "Location": "Device",
    "Dimensions": [32,3,224,224],
    "Format/Datatype": "Channel major FP16 format where channel % 4 == 0"
  }],
  "Outputs": [
  {
    "Name": "onnx::MaxPool_125",
    "Location": "Device",
    "Dimensions": [32,64,112,112],
    "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"
  }],
  "ParameterType": "Convolution",
  "Kernel": [7,7],
  "PaddingMode": "kEXPLICIT_ROUND_DOWN",
  "PrePadding": [3,3],
  "PostPadding": [3,3],
  "Stride": [2,2],
  "Dilation": [1,1],
  "OutMaps": 64,
  "Groups": 1,
  "Weights": {"Type": "Half", "Count": 9408},
  "Bias": {"Type": "Half", "Count": 64},
  "HasSparseWeights": 0,
  "Activation": "RELU",
  "HasBias": 1,
  "HasReLU": 1,
  "TacticName": "trt_turing_cutlass_image_network_first_layer_hmma_fprop_f16f16f32_nhwc_nhwc_k64r7s7c4_stride2x2",
  "TacticValue": "0xe2222883a6602489"
},{
  "Name": "MaxPool_2",
  "LayerType": "CudaPooling",
  "Inputs": [
  {
    "Name": "onnx::MaxPool_125",
    "Location": "Device",
    "Dimensions": [32,64,112,112],
    "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"
  }],
  "Outputs": [
  {
    "Name": "input.8",
    "Location": "Device",
    "Dimensions": [32,64,56,56],
    "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"
  }],
  "ParameterType": "Pooling",
  "PoolingType": "MAX",
  "WindowSize": [3,3],
  "PaddingMode": "kEXPLICIT_ROUND_DOWN",
  "PrePadding": [1,1],
  "PostPadding": [1,1],
  "Stride": [2,2],
  "BlendFactor": 0,
  "AverageCountExcludesPadding": 1,
  "TacticValue": "0xfffffffffffffffe"
}]}"""  # noqa: E501

RESNET_FP32 = """{"Layers": [{
  "Name": "Conv_0 + Relu_1",
  "LayerType": "CaskConvolution",
  "Inputs": [
  {
    "Name": "input.1",
    "Location": "Device",
    "Dimensions": [32,3,224,224],
    "Format/Datatype": "Row major linear FP32"
  }],
  "Outputs": [
  {
    "Name": "onnx::MaxPool_125",
    "Location": "Device",
    "Dimensions": [32,64,112,112],
    "Format/Datatype": "Row major linear FP32"
  }],
  "ParameterType": "Convolution",
  "Kernel": [7,7],
  "PaddingMode": "kEXPLICIT_ROUND_DOWN",
  "PrePadding": [3,3],
  "PostPadding": [3,3],
  "Stride": [2,2],
  "Dilation": [1,1],
  "OutMaps": 64,
  "Groups": 1,
  "Weights": {"Type": "Float", "Count": 9408},
  "Bias": {"Type": "Float", "Count": 64},
  "HasSparseWeights": 0,
  "Activation": "RELU",
  "HasBias": 1,
  "HasReLU": 1,
  "TacticName": "ampere_scudnn_128x64_relu_xregs_large_nn_v1",
  "TacticValue": "0x5deb29b7a8e275f7"
},{
  "Name": "MaxPool_2",
  "LayerType": "TiledPooling",
  "Inputs": [
  {
    "Name": "onnx::MaxPool_125",
    "Location": "Device",
    "Dimensions": [32,64,112,112],
    "Format/Datatype": "Row major linear FP32"
  }],
  "Outputs": [
  {
    "Name": "Reformatted Output Tensor 0 to MaxPool_2",
    "Location": "Device",
    "Dimensions": [32,64,56,56],
    "Format/Datatype": "Row major linear FP32"
  }],
  "ParameterType": "Pooling",
  "PoolingType": "MAX",
  "WindowSize": [3,3],
  "PaddingMode": "kEXPLICIT_ROUND_DOWN",
  "PrePadding": [1,1],
  "PostPadding": [1,1],
  "Stride": [2,2],
  "BlendFactor": 0,
  "AverageCountExcludesPadding": 1,
  "TacticValue": "0x0000000000270101"
}]}"""

MOBILENET_INT8_LAYER = """{
  "Name": "features.0.0.weight + QuantizeLinear_8 + Conv_12 + PWN(Clip_16)",
  "LayerType": "CaskConvolution",
  "Inputs": [
  {
    "Name": "317",
    "Location": "Device",
    "Dimensions": [1,3,224,224],
    "Format/Datatype": "Four wide channel vectorized row major Int8 format"
  }],
  "Outputs": [
  {
    "Name": "334",
    "Location": "Device",
    "Dimensions": [1,32,112,112],
    "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format"
  }],
  "ParameterType": "Convolution",
  "Kernel": [3,3],
  "PaddingMode": "kEXPLICIT_ROUND_DOWN",
  "PrePadding": [1,1],
  "PostPadding": [1,1],
  "Stride": [2,2],
  "Dilation": [1,1],
  "OutMaps": 32,
  "Groups": 1,
  "Weights": {"Type": "Int8", "Count": 864},
  "Bias": {"Type": "Float", "Count": 32},
  "HasSparseWeights": 0,
  "Activation": "CLIPPED_RELU",
  "ParameterSubType": "[0.000000,127.000000]",
  "HasBias": 1,
  "HasReLU": 0,
  "TacticName": "volta_int8x4_icudnn_int8x4_128x32_relu_xregs_medium_c32_nn_v1",
  "TacticValue": "0x10d7116a3fad9b7a"
}"""

NAMES_ONLY = """{"Layers": ["[trainStation1]"
,"backbone.conv1.weight + /backbone/conv1/_weight_quantizer/QuantizeLinear + /backbone/conv1/Conv"
,"/backbone/maxpool/MaxPool"
,"PWN((Unnamed Layer* 112) [ElementWise], PWN(PWN((Unnamed Layer* 109) [Constant] + (Unnamed Layer* 110) [ElementWise], (Unnamed Layer* 111) [Unary]), (Unnamed Layer* 113) [ElementWise]))"
,"{ForeignNode[/head/Constant_2_output_0.../Unsqueeze_2]}"
],
"Bindings": ["input"
,"output"
]}
"""  # noqa: E501

METADATA_LAYER = {
    "Name": "norm_mean + norm_sub",
    "LayerType": "kgen",
    "Metadata": "[ONNX Layer: norm/ReduceMean]\x1e[ONNX Layer: norm/Sub]",
    "Inputs": [{"Name": "x", "Format/Datatype": "Half"}],
    "Outputs": [{"Name": "y", "Format/Datatype": "Float"}],
}


def test_datatypes_are_read_from_both_styles_of_format_text() -> None:
    assert datatype_of("Row major linear FP32") == "fp32"
    assert datatype_of("Channel major FP16 format where channel % 8 == 0") == "fp16"
    assert datatype_of("Thirty-two wide channel vectorized row major Int8 format") == "int8"
    assert datatype_of("Half") == "fp16" and datatype_of("Float") == "fp32"
    assert datatype_of("BFloat16") == "bf16" and datatype_of("Int32") == "int32"
    assert datatype_of("") is None


def test_fused_names_split_into_every_layer_pointwise_fusions_included() -> None:
    assert fused_parts("Conv_0 + Relu_1") == ("Conv_0", "Relu_1")
    assert fused_parts("features.0.0.weight + QuantizeLinear_8 + Conv_12 + PWN(Clip_16)") == (
        "features.0.0.weight",
        "QuantizeLinear_8",
        "Conv_12",
        "Clip_16",
    )
    nested = json.loads(NAMES_ONLY)["Layers"][3]
    assert fused_parts(nested) == (
        "(Unnamed Layer* 112) [ElementWise]",
        "(Unnamed Layer* 109) [Constant]",
        "(Unnamed Layer* 110) [ElementWise]",
        "(Unnamed Layer* 111) [Unary]",
        "(Unnamed Layer* 113) [ElementWise]",
    )


def test_engine_information_parses_into_layers_with_their_datatypes() -> None:
    reformat, conv, pool = parse_engine_information(RESNET_FP16)
    assert reformat.is_reformat and not conv.is_reformat
    assert conv.name == "Conv_0 + Relu_1" and conv.layer_type == "CaskConvolution"
    assert conv.parts == ("Conv_0", "Relu_1")
    assert conv.inputs == ("fp16",) and conv.outputs == ("fp16",) and conv.detailed
    assert pool.compute_precisions() == ("fp16",)
    # get_layer_information(i, JSON) gives one such object
    one = parse_layer_information(json.dumps(json.loads(RESNET_FP16)["Layers"][1]))
    assert one == conv


def test_a_kept_node_fused_into_an_fp16_layer_is_reported_with_every_node_of_it() -> None:
    layers = parse_engine_information(RESNET_FP16)
    readback = check_precisions(layers, keep_fp32=["Relu_1", "MaxPool_2"])
    assert [i.request for i in readback.ignored] == [
        "keep_fp32 node 'Relu_1'",
        "keep_fp32 node 'MaxPool_2'",
    ]
    line = readback.ignored[0].line()
    assert "asked for fp32" in line and "'Conv_0 + Relu_1'" in line
    assert "(from Conv_0, Relu_1)" in line and "inputs fp16, outputs fp16" in line
    assert not readback.complete
    assert readback.lines()[0].startswith("TensorRT ignored keep_fp32 node 'Relu_1'")


def test_kept_nodes_that_ran_in_fp32_are_honoured() -> None:
    layers = parse_engine_information(RESNET_FP32)
    readback = check_precisions(layers, keep_fp32=["Conv_0", "MaxPool_2"])
    assert readback.complete and readback.honoured == [
        "keep_fp32 node 'Conv_0'",
        "keep_fp32 node 'MaxPool_2'",
    ]
    assert "built every requested precision (2 requests" in readback.lines()[0]
    # the reformat layer of the fp16 sample names Conv_0 too, but is not Conv_0
    fp16 = check_precisions(parse_engine_information(RESNET_FP16), keep_fp32=["Conv_0"])
    assert [i.layer.name for i in fp16.ignored] == ["Conv_0 + Relu_1"]


def test_a_quantized_fusion_maps_back_to_every_node_and_layer_precisions_are_checked() -> None:
    layer = parse_layer_information(MOBILENET_INT8_LAYER)
    readback = check_precisions(
        [layer], keep_fp32=["Clip_16"], layer_precisions={"Conv_12": "fp16"}
    )
    assert [(i.request, i.asked) for i in readback.ignored] == [
        ("keep_fp32 node 'Clip_16'", "fp32"),
        ("layer_precisions layer 'Conv_12'", "fp16"),
    ]
    assert "(from features.0.0.weight, QuantizeLinear_8, Conv_12, Clip_16)" in (
        readback.ignored[0].line()
    )
    assert "inputs int8, outputs int8" in readback.ignored[0].line()


def test_layer_metadata_names_the_onnx_nodes_of_a_fused_layer() -> None:
    layer = parse_layer_information(json.dumps(METADATA_LAYER))
    assert layer.nodes == ("norm/ReduceMean", "norm/Sub")
    readback = check_precisions([layer], keep_fp32=["norm/Sub", "norm_mean"])
    # by metadata: norm/Sub is in it; norm_mean is a layer name, not an ONNX node
    assert [i.request for i in readback.ignored] == ["keep_fp32 node 'norm/Sub'"]
    assert "(from norm/ReduceMean, norm/Sub, norm_mean, norm_sub)" in readback.ignored[0].line()
    assert readback.unverified == ["keep_fp32 node 'norm_mean': no engine layer names it"]


def test_names_only_engines_and_myelin_regions_are_not_verified_and_say_why() -> None:
    layers = parse_engine_information(NAMES_ONLY)
    assert not any(layer.detailed for layer in layers)
    readback = check_precisions(layers, keep_fp32=["/backbone/maxpool/MaxPool", "/head/Mul"])
    assert not readback.ignored and not readback.honoured
    first, second = readback.unverified
    assert "no datatypes for engine layer '/backbone/maxpool/MaxPool'" in first
    assert "ProfilingVerbosity.DETAILED" in first
    assert second.startswith("keep_fp32 node '/head/Mul': no engine layer names it; it may be")
    assert "{ForeignNode[/head/Constant_2_output_0.../Unsqueeze_2]}" in second
    assert parse_layer_information('"/backbone/maxpool/MaxPool"').detailed is False
