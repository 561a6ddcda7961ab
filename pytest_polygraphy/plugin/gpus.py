"""Which GPUs a test run may use, and which one each xdist worker gets.

Pure functions, no pytest and no CUDA: the xdist controller must decide without creating a
CUDA context (which would pin memory on every GPU and read ``CUDA_VISIBLE_DEVICES`` too early).
Discovery, in order of precedence:

1. ``--polygraphy-gpus 0,1,3`` (or the ini twin): written into ``CUDA_VISIBLE_DEVICES`` as is,
   so entries are whatever that variable accepts (system indices, ``GPU-``/``MIG-`` UUIDs);
2. an outer ``CUDA_VISIBLE_DEVICES``, honoured with CUDA's own rules (an empty value hides
   every GPU; the list ends at the first invalid entry such as ``-1``);
3. ``nvidia-smi -L``: one entry per GPU (its index), or per MIG instance (its UUID), since
   CUDA shows a process one MIG instance only;
4. otherwise no GPU, and nothing is changed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"

_ENTRY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_:./-]*$")
_GPU_LINE = re.compile(r"^GPU (\d+):")
_MIG_LINE = re.compile(r"^\s+MIG .*\(UUID: (MIG-[^)\s]+)\)")


@dataclass(frozen=True)
class GpuDiscovery:
    """The GPUs found and where they came from ("--polygraphy-gpus", the variable, nvidia-smi)."""

    gpus: tuple[str, ...]
    source: str

    @property
    def explicit(self) -> bool:
        """True when the user named the GPUs (option or environment), not nvidia-smi."""
        return self.source != "nvidia-smi"

    def describe(self) -> str:
        """One line for the terminal header, e.g. ``3,5 (from CUDA_VISIBLE_DEVICES)``."""
        listed = ",".join(self.gpus) if self.gpus else "none"
        return f"{listed} (from {self.source})"


def parse_gpu_list(text: str) -> tuple[str, ...]:
    """Parse ``--polygraphy-gpus``: comma- or space-separated, non-empty, no duplicates.

    Raises ValueError with the accepted syntax; the plugin turns it into a usage error.
    """
    entries = tuple(part for part in re.split(r"[,\s]+", text.strip()) if part)
    if not entries:
        raise ValueError(
            f"--polygraphy-gpus got {text!r}: expected a comma-separated list of GPU indices "
            "or UUIDs as CUDA_VISIBLE_DEVICES accepts them, e.g. '0,1,3'"
        )
    for entry in entries:
        if not _ENTRY.match(entry) or entry.startswith("-"):
            raise ValueError(
                f"--polygraphy-gpus got {text!r}: {entry!r} is not a GPU index or UUID "
                "(expected e.g. '0,1,3' or 'GPU-8f2c...,MIG-1a2b...')"
            )
    duplicates = sorted({entry for entry in entries if entries.count(entry) > 1})
    if duplicates:
        raise ValueError(f"--polygraphy-gpus got {text!r}: {', '.join(duplicates)} listed twice")
    return entries


def parse_cuda_visible_devices(value: str) -> tuple[str, ...]:
    """The devices a ``CUDA_VISIBLE_DEVICES`` value shows, following CUDA's rules.

    CUDA stops at the first invalid entry (so ``"2,-1,3"`` shows device 2 only and ``"-1"``
    or ``""`` show none); a negative index is the conventional invalid entry.
    """
    visible: list[str] = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry or entry.startswith("-") or not _ENTRY.match(entry):
            break
        visible.append(entry)
    return tuple(visible)


def parse_nvidia_smi_list(text: str) -> tuple[str, ...]:
    """Devices from ``nvidia-smi -L`` output: GPU indices, or MIG UUIDs where MIG is enabled."""
    devices: list[str] = []
    gpu_index: str | None = None
    migs: list[str] = []

    def flush() -> None:
        if gpu_index is not None:
            devices.extend(migs if migs else [gpu_index])

    for line in text.splitlines():
        gpu = _GPU_LINE.match(line)
        if gpu:
            flush()
            gpu_index, migs = gpu.group(1), []
            continue
        mig = _MIG_LINE.match(line)
        if mig and gpu_index is not None:
            migs.append(mig.group(1))
    flush()
    return tuple(devices)


def run_nvidia_smi(timeout: float = 15.0) -> str | None:
    """``nvidia-smi -L`` output, or None when the tool is absent or fails (no GPU driver)."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return None
    try:
        completed = subprocess.run(
            [executable, "-L"], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return completed.stdout if completed.returncode == 0 else None


def discover_gpus(
    option: str | None,
    environ: Mapping[str, str],
    nvidia_smi: Callable[[], str | None] = run_nvidia_smi,
) -> GpuDiscovery:
    """Apply the precedence of the module docstring; ``nvidia_smi`` runs only if needed."""
    if option is not None and option.strip():
        return GpuDiscovery(parse_gpu_list(option), "--polygraphy-gpus")
    if CUDA_VISIBLE_DEVICES in environ:
        return GpuDiscovery(
            parse_cuda_visible_devices(environ[CUDA_VISIBLE_DEVICES]), CUDA_VISIBLE_DEVICES
        )
    output = nvidia_smi()
    return GpuDiscovery(parse_nvidia_smi_list(output) if output else (), "nvidia-smi")


def should_assign(discovery: GpuDiscovery) -> bool:
    """Pin workers only when it changes something: several GPUs, or GPUs the user named.

    A single GPU found by nvidia-smi is what every process sees anyway, so the
    environment is left untouched then.
    """
    return len(discovery.gpus) >= 2 or (discovery.explicit and len(discovery.gpus) >= 1)


def assign_gpu(gpus: Sequence[str], in_use: Iterable[str]) -> str:
    """The least used GPU, ties going to the earliest in ``gpus``.

    For workers configured one after the other, worker gw<i> gets the i-th GPU modulo their
    count (gw0 the first, gw1 the second, ... wrapping around), and a worker that replaces
    a crashed one takes the GPU its predecessor freed instead of doubling up on a busy one.
    """
    if not gpus:
        raise ValueError("no GPU to assign")
    counts = dict.fromkeys(gpus, 0)
    for gpu in in_use:
        if gpu in counts:
            counts[gpu] += 1
    return min(gpus, key=lambda gpu: counts[gpu])
