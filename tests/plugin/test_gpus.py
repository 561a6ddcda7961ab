"""GPU discovery and per-worker assignment (pure functions, no CUDA)."""

from __future__ import annotations

import pytest

from pytest_polygraphy.plugin.gpus import (
    GpuDiscovery,
    assign_gpu,
    discover_gpus,
    parse_cuda_visible_devices,
    parse_gpu_list,
    parse_nvidia_smi_list,
    should_assign,
)

# The shape of `nvidia-smi -L` output: two plain GPUs, and one with MIG enabled in between.
NVIDIA_SMI_L = """\
GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-11111111-2222-3333-4444-555555555555)
GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-66666666-7777-8888-9999-000000000000)
  MIG 3g.40gb     Device  0: (UUID: MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee)
  MIG 3g.40gb     Device  1: (UUID: MIG-ffffffff-0000-1111-2222-333333333333)
GPU 2: NVIDIA H100 80GB HBM3 (UUID: GPU-44444444-5555-6666-7777-888888888888)
"""


def _no_nvidia_smi() -> str | None:
    raise AssertionError("nvidia-smi must not run when the GPUs are already known")


@pytest.mark.parametrize(
    ("value", "visible"),
    [
        ("3,5", ("3", "5")),
        (" 0, 1 ,2", ("0", "1", "2")),
        ("", ()),
        ("-1", ()),
        ("2,-1,3", ("2",)),  # CUDA stops at the first invalid entry
        ("1,,2", ("1",)),
        ("GPU-1234abcd,MIG-9f8e", ("GPU-1234abcd", "MIG-9f8e")),
    ],
)
def test_cuda_visible_devices_follow_cuda_rules(value: str, visible: tuple[str, ...]) -> None:
    assert parse_cuda_visible_devices(value) == visible


def test_nvidia_smi_list_gives_gpu_indices_and_mig_uuids() -> None:
    assert parse_nvidia_smi_list(NVIDIA_SMI_L) == (
        "0",
        "MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "MIG-ffffffff-0000-1111-2222-333333333333",
        "2",
    )
    assert parse_nvidia_smi_list("") == ()
    assert parse_nvidia_smi_list("No devices were found\n") == ()


@pytest.mark.parametrize(
    ("text", "gpus"), [("0,1,3", ("0", "1", "3")), ("2", ("2",)), ("0 1", ("0", "1"))]
)
def test_gpu_option_parses(text: str, gpus: tuple[str, ...]) -> None:
    assert parse_gpu_list(text) == gpus


@pytest.mark.parametrize(
    ("text", "complaint"),
    [(" ", "expected a comma-separated list"), ("0,-1", "'-1' is not"), ("0,0", "0 listed twice")],
)
def test_gpu_option_rejects_bad_values(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_gpu_list(text)


def test_option_wins_over_the_environment() -> None:
    found = discover_gpus("1,0", {"CUDA_VISIBLE_DEVICES": "3,5"}, _no_nvidia_smi)
    assert found == GpuDiscovery(("1", "0"), "--polygraphy-gpus")


def test_outer_cuda_visible_devices_is_honoured_even_when_empty() -> None:
    assert discover_gpus(None, {"CUDA_VISIBLE_DEVICES": "3,5"}, _no_nvidia_smi).gpus == ("3", "5")
    hidden = discover_gpus("", {"CUDA_VISIBLE_DEVICES": ""}, _no_nvidia_smi)
    assert hidden.gpus == ()
    assert not should_assign(hidden)


def test_nvidia_smi_is_the_last_resort() -> None:
    calls = []

    def fake() -> str:
        calls.append(1)
        return NVIDIA_SMI_L

    found = discover_gpus(None, {}, fake)
    assert calls == [1]
    assert found.source == "nvidia-smi"
    assert len(found.gpus) == 4
    assert discover_gpus(None, {}, lambda: None) == GpuDiscovery((), "nvidia-smi")


def test_single_gpu_is_pinned_only_when_named() -> None:
    assert not should_assign(GpuDiscovery(("0",), "nvidia-smi"))
    assert should_assign(GpuDiscovery(("0", "1"), "nvidia-smi"))
    assert should_assign(GpuDiscovery(("4",), "--polygraphy-gpus"))
    assert should_assign(GpuDiscovery(("4",), "CUDA_VISIBLE_DEVICES"))


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_sequential_assignment_is_the_ith_gpu_modulo_count(count: int) -> None:
    gpus = tuple(str(10 + i) for i in range(count))
    in_use: list[str] = []
    for index in range(7):
        gpu = assign_gpu(gpus, in_use)
        assert gpu == gpus[index % count]
        in_use.append(gpu)


def test_replacement_worker_takes_the_freed_gpu() -> None:
    gpus = ("0", "1", "2")
    workers = {"gw0": "0", "gw1": "1", "gw2": "2"}
    del workers["gw1"]  # crashed; xdist starts gw3 in its place
    assert assign_gpu(gpus, workers.values()) == "1"


def test_assignment_needs_a_gpu() -> None:
    with pytest.raises(ValueError, match="no GPU"):
        assign_gpu((), [])
