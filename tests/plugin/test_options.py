"""Every option: its command-line form, its ini twin, and the UsageError a bad value gives."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_polygraphy.plugin.options import OPTION_SPECS, PolygraphyOptions, get_options
from pytest_polygraphy.plugin.optionspecs import OptionSpec
from tests.plugin import harness

# (option, command-line values, ini value, parsed attribute value)
CASES: list[tuple[str, list[str], str, Any]] = [
    (
        "providers",
        ["cpu", "CUDAExecutionProvider"],
        "cpu CUDAExecutionProvider",
        ("cpu", "CUDAExecutionProvider"),
    ),
    ("reference", ["golden"], "golden", "golden"),
    ("precisions", ["fp32", "fp16"], "fp32 fp16", ("fp32", "fp16")),
    ("val_range", ["[0,2]", "ids:[0,100]"], "[0,2] ids:[0,100]", {"": (0, 2), "ids": (0, 100)}),
    ("seed", ["7"], "7", 7),
    ("iterations", ["3"], "3", 3),
    ("rtol", ["1e-3", "boxes:1e-2"], "1e-3 boxes:1e-2", {"": 1e-3, "boxes": 1e-2}),
    ("atol", ["0.5"], "0.5", {"": 0.5}),
    ("check_error_stat", ["max", "y:quantile"], "max y:quantile", {"": "max", "y": "quantile"}),
    ("error_quantile", ["0.9"], "0.9", {"": 0.9}),
    ("compare_func", ["distance_metrics"], "distance_metrics", "distance_metrics"),
    ("report", ["out.html"], "out.html", "out.html"),
    ("gpus", ["0,1"], "0,1", "0,1"),
    ("fail_on", ["overflow|inf"], "overflow|inf", "overflow|inf"),
    ("reduce_mode", ["linear"], "linear", "linear"),
    ("precision_mode", ["linear"], "linear", "linear"),
    ("precision_direction", ["reverse"], "reverse", "reverse"),
    ("max_checks", ["7"], "7", 7),
    ("repeat", ["3"], "3", 3),
    ("build", ["good"], "good", "good"),
    ("keep_fp32", ["conv1", "#3:Add:y"], "conv1 #3:Add:y", ("conv1", "#3:Add:y")),
    ("keep_fp16", ["conv1", "#3:Add:y"], "conv1 #3:Add:y", ("conv1", "#3:Add:y")),
    ("precision_to", ["float16"], "float16", "float16"),
    ("outputs", ["y", "m"], "y m", ("y", "m")),
    ("exclude_outputs", ["z"], "z", ("z",)),
    ("save_format", ["json"], "json", "json"),
    (
        "postprocess",
        ["logits:top-5", "top-2,axis=0"],
        "logits:top-5 top-2,axis=0",
        {"logits": (5, None), "": (2, 0)},
    ),
    ("warm_up", ["3"], "3", 3),
    (
        "trt_pool_limit",
        ["workspace:1G", "tactic_dram:1e6"],
        "workspace:1G tactic_dram:1e6",
        {"workspace": 1 << 30, "tactic_dram": 1_000_000},
    ),
    ("trt_builder_optimization_level", ["5"], "5", 5),
    ("trt_calibrator", ["entropy2"], "entropy2", "entropy2"),
    ("trt_tactic_sources", ["CUBLAS", "cudnn"], "CUBLAS cudnn", ("cublas", "cudnn")),
    ("trt_precision_constraints", ["obey"], "obey", "obey"),
]

FLAGS = [
    "mark_all",
    "validate",
    "update_golden",
    "collect_models",
    "skip_unavailable",
    "reduce",
    "precision",
    "no_reduce_inputs",
    "no_reduce_outputs",
    "fail_fast",
    "trt_strongly_typed",
    "trt_sparse_weights",
    "trt_use_dla",
    "trt_allow_gpu_fallback",
]

# (option, bad command-line values, what the message must say)
BAD: list[tuple[str, list[str], str]] = [
    ("providers", ["gpu"], "short name (cpu, cuda, tensorrt)"),
    ("reference", ["numpy"], "onnxref, onnxrt, trt, golden"),
    ("precisions", ["fp64"], "fp32, tf32, fp16, bf16, int8, fp8"),
    ("input_shapes", ["x:1x3"], "bracketed list like [1,3,224,224]"),
    ("val_range", ["x:[1,0]"], "min <= max"),
    ("seed", ["one"], "integer >= 0"),
    ("iterations", ["0"], "integer >= 1"),
    ("rtol", ["boxes:-1"], "non-negative number"),
    ("atol", ["x"], "non-negative number"),
    ("check_error_stat", ["worst"], "elemwise, max, mean, median, quantile"),
    ("error_quantile", ["2"], "[0, 1]"),
    ("compare_func", ["exact"], "simple, indices, distance_metrics, quality_metrics"),
    ("fail_on", ["(unclosed"], "not a valid regular expression"),
    ("reduce_mode", ["binary"], "bisect, linear"),
    ("load_replay", ["missing.jsonl"], "no such file"),
    ("precision_direction", ["backward"], "forward, reverse"),
    ("max_checks", ["0"], "integer >= 1"),
    ("repeat", ["sometimes"], "good or bad"),
    ("outputs", ["mark", "all", "y"], "'mark all' stands alone"),
    ("save_format", ["zip"], "npz, json"),
    ("postprocess", ["logits:top-0"], "top-K[,axis=A] with K >= 1 for 'logits'"),
    ("warm_up", ["-1"], "integer >= 0"),
    ("load_outputs", ["missing.json"], "no such results file"),
    ("data_loader_script", ["missing.py"], "no such data loader script"),
    ("trt_pool_limit", ["scratch:1G"], "pool among workspace, dla_managed_sram"),
    ("trt_builder_optimization_level", ["6"], "0 to 5"),
    ("trt_tactic_sources", ["cutlass"], "tactic sources among cublas, cublas_lt"),
    ("trt_precision_constraints", ["strict"], "obey, prefer, none"),
    ("trt_plugins", ["missing.so"], "no such file"),
    ("trt_calibrator", ["legacy"], "expected one of entropy2, minmax, got 'legacy'"),
]


def flag(attr: str) -> str:
    return "--polygraphy-" + attr.replace("_", "-")


def configure(pytester: pytest.Pytester, *args: str) -> PolygraphyOptions:
    config = pytester.parseconfigure(*args)
    try:
        return get_options(config)
    finally:
        config._ensure_unconfigure()


def ini(pytester: pytest.Pytester, **values: str) -> None:
    lines = "".join(f"{key} = {value}\n" for key, value in values.items())
    pytester.makeini("[pytest]\n" + lines)


def test_every_option_is_covered_here() -> None:
    covered = {c[0] for c in CASES} | set(FLAGS) | {"input_shapes", "load_inputs"}
    covered |= {"cache_dir", "golden_dir", "debug_dir", "load_replay", "artifacts"}
    covered |= {"save_inputs", "save_outputs", "load_outputs", "data_loader_script"}
    covered |= {"trt_plugins", "save_engine", "trt_min_shapes", "trt_opt_shapes"}
    covered |= {"trt_max_shapes", "trt_timing_cache", "calibration_cache"}
    assert covered == {spec.attr for spec in OPTION_SPECS}


@pytest.mark.parametrize(("attr", "cli", "ini_value", "expected"), CASES, ids=[c[0] for c in CASES])
def test_option_and_ini_twin(
    pytester: pytest.Pytester, attr: str, cli: list[str], ini_value: str, expected: Any
) -> None:
    assert getattr(configure(pytester, flag(attr), *cli), attr) == expected
    ini(pytester, **{f"polygraphy_{attr}": ini_value})
    assert getattr(configure(pytester), attr) == expected


def test_the_command_line_wins_over_the_ini_file(pytester: pytest.Pytester) -> None:
    ini(pytester, polygraphy_seed="3", polygraphy_rtol="1e-2")
    options = configure(pytester, "--polygraphy-seed", "4")
    assert (options.seed, options.rtol) == (4, {"": 1e-2})


@pytest.mark.parametrize("attr", FLAGS)
def test_flags_and_their_ini_twins(pytester: pytest.Pytester, attr: str) -> None:
    assert getattr(configure(pytester), attr) is False
    assert getattr(configure(pytester, flag(attr)), attr) is True
    ini(pytester, **{f"polygraphy_{attr}": "true"})
    assert getattr(configure(pytester), attr) is True


def test_input_shape_sets_repeat_on_the_command_line_and_are_lines_in_the_ini(
    pytester: pytest.Pytester,
) -> None:
    options = configure(
        pytester,
        "--polygraphy-input-shapes", "x:[1,3,224,224]", "mask:[1,1,224,224]",
        "--polygraphy-input-shapes", "x:[8,3,224,224]", "mask:[8,1,224,224]",
    )  # fmt: skip
    assert options.input_shapes == (
        {"x": (1, 3, 224, 224), "mask": (1, 1, 224, 224)},
        {"x": (8, 3, 224, 224), "mask": (8, 1, 224, 224)},
    )
    ini(pytester, polygraphy_input_shapes="\n  x:[1, 3] mask:[1,1]\n  x:[2,3] mask:[2,1]")
    assert configure(pytester).input_shapes == (
        {"x": (1, 3), "mask": (1, 1)},
        {"x": (2, 3), "mask": (2, 1)},
    )


def test_trt_profile_shapes_repeat_once_per_profile_and_are_lines_in_the_ini(
    pytester: pytest.Pytester,
) -> None:
    options = configure(
        pytester,
        "--polygraphy-trt-min-shapes", "x:[1,3]", "--polygraphy-trt-opt-shapes", "x:[2,3]",
        "--polygraphy-trt-max-shapes", "x:[4,3]",
        "--polygraphy-trt-min-shapes", "x:[5,3]", "--polygraphy-trt-opt-shapes", "x:[8,3]",
        "--polygraphy-trt-max-shapes", "x:[16,3]",
    )  # fmt: skip
    assert options.trt_min_shapes == ({"x": (1, 3)}, {"x": (5, 3)})
    assert options.trt_opt_shapes == ({"x": (2, 3)}, {"x": (8, 3)})
    assert options.trt_max_shapes == ({"x": (4, 3)}, {"x": (16, 3)})
    ini(
        pytester,
        polygraphy_trt_min_shapes="\n  x:[1,3]\n  x:[5,3]",
        polygraphy_trt_opt_shapes="\n  x:[2,3]\n  x:[8,3]",
        polygraphy_trt_max_shapes="\n  x:[4,3]\n  x:[16,3]",
        polygraphy_save_engine="engines",
    )
    options = configure(pytester)
    assert options.trt_min_shapes == ({"x": (1, 3)}, {"x": (5, 3)})
    assert options.trt_max_shapes == ({"x": (4, 3)}, {"x": (16, 3)})
    assert options.save_engine == pytester.path / "engines"
    assert configure(pytester, "--polygraphy-save-engine", "e2").save_engine == (
        pytester.path / "e2"
    )


def test_paths_are_relative_to_where_they_were_given(pytester: pytest.Pytester) -> None:
    sub = pytester.mkdir("sub")
    (pytester.path / "j.jsonl").write_text("")
    ini(
        pytester,
        polygraphy_golden_dir="g",
        polygraphy_cache_dir="c",
        polygraphy_debug_dir="d",
        polygraphy_load_replay="j.jsonl",
        polygraphy_load_inputs="in.json more.npz",
        polygraphy_model="models/net.onnx",
    )
    root = pytester.path
    options = configure(pytester)
    assert options.golden_dir == root / "g" and options.cache_dir == root / "c"
    assert options.debug_dir == root / "d" and options.load_replay == root / "j.jsonl"
    assert options.load_inputs == (root / "in.json", root / "more.npz")
    assert options.model == root / "models" / "net.onnx"
    options = configure(
        pytester, "--polygraphy-golden-dir", str(sub / "g2"), "--polygraphy-load-inputs", "x.npz"
    )
    assert options.golden_dir == sub / "g2"
    assert options.load_inputs == (pytester.path / "x.npz",)  # the invocation folder


def test_run_paths_are_relative_to_where_they_were_given(pytester: pytest.Pytester) -> None:
    sub = pytester.mkdir("sub")
    for name in ("r.json", "load.py", "sub/r.json", "sub/load.py"):
        (pytester.path / name).write_text("")
    ini(
        pytester,
        polygraphy_save_inputs="i",
        polygraphy_save_outputs="o",
        polygraphy_load_outputs="r.json",
        polygraphy_data_loader_script="load.py:make",
    )
    root = pytester.path
    options = configure(pytester)
    assert (options.save_inputs, options.save_outputs) == (root / "i", root / "o")
    assert options.load_outputs == root / "r.json"
    assert options.data_loader_script == f"{root / 'load.py'}:make"
    options = configure(
        pytester, "--polygraphy-load-outputs", str(sub / "r.json"),
        "--polygraphy-data-loader-script", "sub/load.py",
    )  # fmt: skip
    assert options.load_outputs == sub / "r.json"
    assert options.data_loader_script == f"{sub / 'load.py'}:load_data"
    assert configure(pytester, "--polygraphy-outputs", "mark", "all").outputs == "mark-all"
    (sub / "lib.so").write_text("")
    assert configure(pytester, "--polygraphy-trt-plugins", "sub/lib.so").trt_plugins == (
        sub / "lib.so",
    )


def test_backends_from_switches_or_the_ini(pytester: pytest.Pytester) -> None:
    options = configure(pytester)
    assert options.backends == () and options.reference_backend() is None
    options = configure(pytester, "--trt", "--onnxrt", "--polygraphy-skip-unavailable")
    assert options.backends == ("onnxrt", "trt") and options.backends_on_command_line
    assert options.reference_backend() == "onnxrt"
    ini(pytester, polygraphy_backends="trt onnxref")
    options = configure(pytester)
    assert options.backends == ("onnxref", "trt") and not options.backends_on_command_line
    assert options.reference_backend() == "onnxref"
    assert configure(pytester, "--onnxrt").backends == ("onnxrt",)
    options = configure(pytester, "--polygraphy-reference", "trt", "--polygraphy-skip-unavailable")
    assert options.reference_backend() == "trt"
    ini(pytester, polygraphy_backends="tensorflow")
    with pytest.raises(pytest.UsageError, match="polygraphy_backends: expected some of onnxref"):
        configure(pytester)


@pytest.mark.parametrize(("attr", "cli", "says"), BAD, ids=[b[0] for b in BAD])
def test_bad_values_are_usage_errors_saying_what_is_accepted(
    pytester: pytest.Pytester, attr: str, cli: list[str], says: str
) -> None:
    with pytest.raises(pytest.UsageError) as error:
        configure(pytester, flag(attr), *cli)
    assert str(error.value).startswith(flag(attr) + ": ")
    assert says in str(error.value)
    ini(pytester, **{f"polygraphy_{attr}": " ".join(cli)})
    with pytest.raises(pytest.UsageError, match=f"ini option polygraphy_{attr}: "):
        configure(pytester)


MULTI_VALUE = [spec for spec in OPTION_SPECS if spec.kind in ("values", "sets")]
#: A valid value of each option that takes several values.
MULTI_VALID = {
    "providers": "cpu",
    "precisions": "fp16",
    "input_shapes": "x:[1,3]",
    "val_range": "[0,1]",
    "load_inputs": "in.npz",
    "rtol": "1e-3",
    "atol": "1e-3",
    "check_error_stat": "max",
    "error_quantile": "0.5",
    "keep_fp32": "conv1",
    "keep_fp16": "conv1",
    "artifacts": "out.txt",
    "outputs": "y",
    "exclude_outputs": "z",
    "postprocess": "top-5",
    "trt_pool_limit": "workspace:1G",
    "trt_tactic_sources": "cublas",
    "trt_plugins": "lib.so",
    "trt_min_shapes": "x:[1,3]",
    "trt_opt_shapes": "x:[1,3]",
    "trt_max_shapes": "x:[1,3]",
}


def test_every_option_taking_several_values_is_covered_here() -> None:
    assert sorted(MULTI_VALID) == sorted(spec.attr for spec in MULTI_VALUE)


@pytest.mark.parametrize(
    "path", ["net.onnx", "det.plan", "models", "test_a.py", "test_a.py::test_a"]
)
@pytest.mark.parametrize("spec", MULTI_VALUE, ids=[s.attr for s in MULTI_VALUE])
def test_a_path_swallowed_by_an_option_says_to_put_paths_first(
    pytester: pytest.Pytester, spec: OptionSpec, path: str
) -> None:
    pytester.mkdir("models")
    pytester.makepyfile(test_a="def test_a(): pass")
    if spec.attr in ("load_inputs", "artifacts") and path.startswith("test_a.py::"):
        return  # not a file: a load_inputs value that does not exist fails when read
    with pytest.raises(pytest.UsageError) as error:
        configure(pytester, spec.flag, MULTI_VALID[spec.attr], path)
    message = str(error.value)
    assert message.startswith(f"{spec.flag}: {path!r} looks like a path to test")
    assert f"Put the paths first (pytest {path} {spec.flag} ...)" in message
    assert f"end the option's values with -- (pytest {spec.flag} ... -- {path})" in message


def test_paths_after_the_values_and_a_double_dash_run(pytester: pytest.Pytester) -> None:
    harness.save(harness.scale_model(), pytester.path / "net.onnx")
    result = pytester.runpytest("--onnxref", "--polygraphy-precisions", "fp16", "net.onnx")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--polygraphy-precisions: 'net.onnx' looks like a path*"])
    result = pytester.runpytest("--onnxref", "--polygraphy-precisions", "fp16", "--", "net.onnx")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("mode", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_bad_value_stops_the_run_with_a_usage_error(
    pytester: pytest.Pytester, mode: list[str]
) -> None:
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess("--polygraphy-rtol", "boxes:abc", *mode)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--polygraphy-rtol: rtol of 'boxes' must be a non-negative*"])


def test_model_settings_lines_in_the_ini(pytester: pytest.Pytester) -> None:
    ini(
        pytester,
        polygraphy_model_settings=(
            '\n  det*.onnx {"rtol": {"boxes": 1e-2}, "input_shapes": ["x:[1,3]"]}'
            '\n  models/*.onnx {"seed": 3}'
        ),
    )
    [(glob1, det), (glob2, models)] = configure(pytester).model_settings
    assert (glob1, det) == (
        "det*.onnx",
        {"rtol": {"boxes": 1e-2}, "input_shapes": ({"x": (1, 3)},)},
    )
    assert (glob2, models) == ("models/*.onnx", {"seed": 3})
    ini(pytester, polygraphy_model_settings="det.onnx {rtol: 1}")
    with pytest.raises(pytest.UsageError, match="polygraphy_model_settings: expected lines 'GLOB"):
        configure(pytester)
    ini(pytester, polygraphy_model_settings='det.onnx {"rtl": 1}')
    with pytest.raises(pytest.UsageError, match="unknown key 'rtl'; accepted keys: precisions"):
        configure(pytester)


def test_pyproject_toml_values(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(
        """
        [tool.pytest.ini_options]
        polygraphy_precisions = ["fp32", "fp16"]
        polygraphy_rtol = ["1e-3", "logits:5e-3"]
        polygraphy_seed = "11"
        polygraphy_validate = true
        polygraphy_input_shapes = ["x:[1,3]", "x:[4,3]"]
        """
    )
    options = configure(pytester)
    assert options.precisions == ("fp32", "fp16")
    assert options.rtol == {"": 1e-3, "logits": 5e-3}
    assert (options.seed, options.validate) == (11, True)
    assert options.input_shapes == ({"x": (1, 3)}, {"x": (4, 3)})


def test_to_args_reproduces_the_settings(pytester: pytest.Pytester) -> None:
    args = [
        "--onnxrt", "--onnxref", "--polygraphy-precisions", "fp16",
        "--polygraphy-rtol", "0.001", "y:0.01", "--polygraphy-val-range", "x:[0,2]",
        "--polygraphy-input-shapes", "x:[1,3]", "--polygraphy-input-shapes", "x:[2,3]",
        "--polygraphy-mark-all", "--polygraphy-seed", "3",
    ]  # fmt: skip
    options = configure(pytester, *args)
    rendered = options.to_args()
    assert rendered[:2] == ["--onnxref", "--onnxrt"]
    again = configure(pytester, *rendered)
    assert again == options
    assert configure(pytester).to_args() == []


def test_defaults() -> None:
    options = PolygraphyOptions()
    assert options.precisions == ("fp32",) and options.providers == ("cpu",)
    assert (options.seed, options.iterations, options.compare_func) == (1, 1, "simple")


def test_calibrator_and_tensorrt_cache_files_have_ini_twins_relative_to_the_ini(
    pytester: pytest.Pytester,
) -> None:
    ini(
        pytester,
        polygraphy_trt_calibrator="minmax",
        polygraphy_trt_timing_cache="caches/timing.cache",
        polygraphy_calibration_cache="caches/calib.cache",
    )
    options = configure(pytester)
    assert options.trt_calibrator == "minmax"
    assert options.trt_timing_cache == pytester.path / "caches" / "timing.cache"
    assert options.calibration_cache == pytester.path / "caches" / "calib.cache"
    options = configure(
        pytester,
        "--polygraphy-trt-calibrator", "entropy2",
        "--polygraphy-trt-timing-cache", "t.cache",
        "--polygraphy-calibration-cache", "c.cache",
    )  # fmt: skip
    assert options.trt_calibrator == "entropy2"
    assert options.trt_timing_cache == pytester.path / "t.cache"  # absent files are fine
    assert options.calibration_cache == pytester.path / "c.cache"
    assert options.command_line >= {"trt_calibrator", "trt_timing_cache", "calibration_cache"}


def test_the_option_table_names_real_parsers_and_its_help_matches_the_vocabulary() -> None:
    """The table is data (``options.json``): every parser and renderer it names exists,
    each option that offers a closed set of values says every value in its help, and the
    flags are those the plugin has always had (kebab-case of the attribute)."""
    from pytest_polygraphy.plugin import optionparsers, vocabulary

    for spec in OPTION_SPECS:
        assert spec.parse is not None or spec.parse_with is None, spec.attr
        assert spec.render is not None or spec.render_with is None, spec.attr
        assert spec.kind in ("flag", "value", "values", "sets"), spec.attr
        assert spec.flag == "--polygraphy-" + spec.attr.replace("_", "-")
    listed = {
        "precisions": vocabulary.PRECISIONS,
        "check_error_stat": vocabulary.CHECK_ERROR_STATS,
        "compare_func": vocabulary.COMPARE_FUNCS,
        "trt_calibrator": vocabulary.TRT_CALIBRATORS,
        "reference": vocabulary.BACKENDS,
    }
    for attr, values in listed.items():
        spec = next(spec for spec in OPTION_SPECS if spec.attr == attr)
        assert all(value in spec.help for value in values), (attr, spec.help)
    with pytest.raises(ValueError, match="unknown parser"):
        optionparsers.parser(["nonsense", 1])
    choice = optionparsers.parser(["choice", "TRT_CALIBRATORS"])
    assert choice is not None and choice("minmax", "", None, False) == "minmax"  # type: ignore[arg-type]
