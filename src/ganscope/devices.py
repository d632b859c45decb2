"""Where a run computes: `train.device` resolved, and the backend settings it implies.

Random draws stay on the CPU whatever the device (`ganscope.seeding`): a CPU generator's
state is the same bytes everywhere, so a checkpoint written on a GPU resumes on a
CPU-only machine, and the noise and batches a seed sees do not depend on the device.
"""

from __future__ import annotations

import torch

from ganscope.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """`auto` -> CUDA when PyTorch sees it, else the CPU; `cpu`, `cuda`, `cuda:N` as given,
    refused in one line when this machine lacks them."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"train.device={name} but PyTorch sees no CUDA device here (torch {torch.__version__}, "
                f"CUDA build: {torch.version.cuda or 'no'}); use the device cpu or auto (-s train.device=..., or --device "
                f"for eval and sample)"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"train.device={name} but this machine has {torch.cuda.device_count()} CUDA device(s); "
                f"use cuda:0 to cuda:{torch.cuda.device_count() - 1}"
            )
    return device


def configure_backends(tf32: bool) -> None:
    """TensorFloat-32 only when asked (PyTorch lets cuDNN use it by default), and cuDNN's
    deterministic algorithms, so that a seed fixes a run on a given GPU as on the CPU."""
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def autocast(device: torch.device, precision: str) -> torch.autocast | None:
    """The autocast context of `train.precision` on `device`, or None for fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else None
