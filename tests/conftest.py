"""Shared fixtures: small, fast settings that still exercise real training."""

from __future__ import annotations

import pytest
import torch

import ganscope

torch.set_num_threads(1)  # tests run many tiny models; threads only add overhead


@pytest.fixture
def tiny_overrides() -> list[str]:
    """A small MLP GAN on the ring that trains in well under a second per 100 steps, at a
    constant learning rate: the tests' step counts and thresholds were set without the
    default cosine decay, and resuming to more steps is bit-exact only without a schedule."""
    return [
        "train.lr_schedule=constant",
        "generator.hidden=32",
        "generator.depth=2",
        "discriminator.hidden=32",
        "discriminator.depth=2",
        "noise.z_dim=8",
        "train.batch_size=64",
        "train.eval_samples=500",
        "train.log_every=10",
        "train.eval_every=20",
        "train.checkpoint_every=20",
        "train.report=false",  # the pages are the report tests' business; rendering one costs seconds
    ]


@pytest.fixture
def tiny_config(tiny_overrides: list[str]) -> ganscope.Config:
    return ganscope.load_config(overrides=tiny_overrides + ["train.steps=40"])
