"""Data-parallel runs: `torchrun --nproc_per_node=N -m ganscope train ...`.

Every process holds the whole population (each seed's networks are small; the batch is
what grows), and each seed's batch of `train.batch_size` samples is split across the
processes: process r keeps the r-th contiguous share of every draw that has one entry
per sample (real images and their labels, G's noise and labels, the penalties'
interpolation weights). Each process draws the full batch from the seed's stream and
keeps its share, so the streams advance the same way on every process and at every
world size: a data-parallel run sees the samples of a one-process run with the same
batch, and its checkpoint is the one-process checkpoint.

Gradients are averaged over processes before every optimiser step with one flat
all-reduce per step (as stylegan2-ada-pytorch's training loop does), not by wrapping
the networks in `DistributedDataParallel`: a GAN step runs D with frozen weights in G's
step, differentiates penalties twice and calls networks outside `forward`, none of
which DDP's reducer follows. The per-seed losses the trainer logs are all-reduced as
well, so every process sees the same numbers, takes the same decisions (log, monitor,
divergence, stop) and holds the same weights; rank 0 alone writes the run folder.

Batch norm takes per-process statistics by default (a process's share is its batch);
`train.distributed.sync_batch_norm` all-reduces them, on gloo and NCCL alike, so that
the statistics are the full batch's (differentiably, with
`torch.distributed.nn.functional.all_reduce`). Other statistics over the batch (the
minibatch-stddev feature, minibatch discrimination) stay per process, as in
stylegan2-ada's multi-GPU training.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from ganscope.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the data-parallel processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def parallel(self) -> bool:
        return self.size > 1

    @property
    def leader(self) -> bool:
        """The process that writes the run folder and prints."""
        return self.rank == 0

    def share(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """This process's contiguous share of `x` along `dim` (the batch axis of (S, B, ...))."""
        if not self.parallel:
            return x
        n = x.shape[dim] // self.size
        return x.narrow(dim, self.rank * n, n).contiguous()


_current = World()


def current() -> World:
    """The world of this process: set by `start`, one process otherwise."""
    return _current


def launched_world_size() -> int:
    """The process count torchrun (or any launcher setting `WORLD_SIZE`) started."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def start() -> World:
    """Join the process group of a torchrun launch and make its world current: gloo for
    CPU tensors, NCCL for CUDA ones (each process on its own GPU, `cuda:LOCAL_RANK`). One
    process (no launcher) is rank 0 of 1 and joins nothing."""
    global _current
    if launched_world_size() <= 1:
        _current = World()
        return _current
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        backend = "cpu:gloo,cuda:nccl"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timedelta(minutes=30))
    _current = World(dist.get_rank(), dist.get_world_size(), local_rank)
    return _current


def stop() -> None:
    """Leave the process group (end of a torchrun run)."""
    global _current
    if dist.is_initialized():
        dist.destroy_process_group()
    _current = World()


def process_device(device: torch.device) -> torch.device:
    """A CUDA run's device for this process: its own GPU, `cuda:LOCAL_RANK`."""
    if not _current.parallel or device.type != "cuda":
        return device
    if device.index is not None:
        raise ConfigError(f"train.device={device} names one GPU, but each process of a torchrun run takes its "
                          f"own (cuda:LOCAL_RANK); use train.device=cuda or auto")
    return torch.device("cuda", _current.local_rank % torch.cuda.device_count())


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Replace every gradient by its mean over the processes, in one all-reduce: each
    process's loss is a mean over its share of the batch, so the mean of the gradients is
    the gradient of the full batch's loss."""
    if not _current.parallel:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= _current.size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def average_step(out: dict[str, torch.Tensor], flag: bool) -> tuple[dict[str, torch.Tensor], bool]:
    """The per-seed scalars of one step averaged over processes, and whether `flag` (a
    signal received) is set on any process, in one all-reduce: every process then logs,
    judges and stops alike."""
    if not _current.parallel:
        return out, flag
    keys = sorted(out)
    values = [out[k].detach().float().reshape(-1) for k in keys]
    device = values[0].device if values else torch.device("cpu")
    flat = torch.cat([*values, torch.tensor([float(flag)], device=device)])
    dist.all_reduce(flat)
    averaged, offset = {}, 0
    for k, v in zip(keys, values, strict=True):
        averaged[k] = (flat[offset:offset + v.numel()] / _current.size).view_as(out[k]).to(out[k].dtype)
        offset += v.numel()
    return averaged, bool(flat[-1].item() > 0)


def from_leader(value: T) -> T:
    """Rank 0's `value` on every process (a decision that must not differ)."""
    if not _current.parallel:
        return value
    box: list[Any] = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def synced_moments(x: torch.Tensor, dims: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Mean and biased variance of `x` over `dims` on every process's share together (one
    differentiable all-reduce of the sums and sums of squares), and the number of values
    behind them."""
    from torch.distributed.nn.functional import all_reduce

    count = _current.size
    for d in dims:
        count *= x.shape[d]
    sums = torch.cat([x.sum(dim=tuple(dims), keepdim=True), x.square().sum(dim=tuple(dims), keepdim=True)])
    mean, square = (all_reduce(sums) / count).chunk(2)
    return mean, (square - mean.square()).clamp_min(0), count


def check_config(cfg: Any, world: World, data_parallel_scheme: bool, pack: int) -> None:
    """Refuse in one line what a data-parallel run cannot split evenly or exactly; the
    config must also hold with each process's share as its batch (a minibatch-stddev
    group, say)."""
    if not world.parallel:
        return
    if not data_parallel_scheme:
        raise ConfigError(f"scheme {cfg.scheme.name} does not run data-parallel (torchrun with {world.size} "
                          f"processes); use scheme.name=alternating or launch one process")
    if cfg.generator.name == "stylegan":
        raise ConfigError("generator stylegan draws per-layer noise inside G, which a data-parallel run does not "
                          "split; launch one process or use another generator")
    batch, unit = cfg.train.batch_size, world.size * pack
    if batch % unit:
        raise ConfigError(f"train.batch_size ({batch}) must split into {world.size} equal shares of whole packs "
                          f"of {pack}: use a multiple of {unit}")
    from ganscope.config import load_config

    share = cfg.to_dict()
    share["train"]["batch_size"] = batch // world.size
    try:
        load_config(share)
    except ConfigError as err:
        raise ConfigError(f"with {world.size} processes each takes {batch // world.size} of the {batch} samples "
                          f"per seed in train.batch_size, and then: {err}") from None
