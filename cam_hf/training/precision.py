"""The mixed precision a training run computes in (`--mixed_precision auto`)."""

import os

import torch


def choose_precision(requested: str) -> tuple[str, str]:
    """The mixed precision to train in and why: `auto` takes bf16 only where the hardware computes it
    natively (on an AVX2-only CPU a bf16 step is ~11x slower than fp32)."""
    if requested != "auto":
        return requested, "asked for"
    if torch.cuda.is_available():
        if torch.cuda.is_bf16_supported():
            return "bf16", f"{torch.cuda.get_device_name()} computes bf16 natively"
        return "no", f"{torch.cuda.get_device_name()} has no native bf16"
    flags = set()
    if os.path.isfile("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            flags = {flag for line in f if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    native = sorted(flags & {"avx512_bf16", "amx_bf16"})
    if native:
        return "bf16", f"the CPU has {', '.join(native)}"
    return "no", f"the CPU has no native bf16 ({torch.backends.cpu.get_cpu_capability()}): fp32 is faster"


__all__ = ["choose_precision"]
