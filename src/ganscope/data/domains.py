"""Two unpaired image domains, A and B, for a translator (CycleGAN).

`data: {name: domains, a: {name: mnist}, b: {name: digits, size: 28}}`: each domain is
any image dataset of the registry, with its own parameters and its own oracle. As a
`Dataset`, the pair is domain B: a translation A -> B is a generated B sample, so B's
samples, modes, oracle and reference are what every score, metric and monitor rule reads,
and A's labels, carried with the source images, make label fidelity the translation's
label preservation. The scheme draws from each domain itself (`a`, `b`).
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import ValidationError

from ganscope.config import Config, Piece, describe_validation_error
from ganscope.data.base import DATASETS, Dataset, ModeOracle
from ganscope.errors import ConfigError, DataError
from ganscope.registry import Params


class DomainsParams(Params):
    a: dict[str, Any]
    b: dict[str, Any]


def domain_piece(raw: dict[str, Any], where: str) -> tuple[Piece, Params]:
    """One domain's data piece and its validated parameters; a bad one is a ConfigError
    naming `data.<where>`."""
    try:
        piece = Piece.model_validate(raw)
    except ValidationError:
        raise ConfigError(f"data.{where}: give a data piece, e.g. {{name: mnist}}") from None
    if piece.name not in DATASETS or piece.name == "domains":
        valid = ", ".join(n for n in DATASETS.names() if n != "domains")
        raise ConfigError(f"data.{where}.name: unknown dataset {piece.name!r}; valid: {valid}")
    entry = DATASETS.entry(piece.name)
    try:
        return piece, piece.params(DATASETS)
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err, entry.params, prefix=f"data.{where}")) from None


class Domains(Dataset):
    """Domain A (the source) and domain B (the target), B standing for the pair."""

    name = "domains"

    def __init__(self, a: Dataset, b: Dataset) -> None:
        if a.sample_shape != b.sample_shape:
            raise DataError(f"domains: A's images are {a.sample_shape} and B's {b.sample_shape}; give both the same "
                            "channels and side (e.g. data.b.size=28 for digits beside mnist)")
        self.a, self.b = a, b
        self.eval_samples = b.eval_samples

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.b.sample_shape

    @property
    def oracle(self) -> ModeOracle:
        return self.b.oracle

    @property
    def label_weights(self) -> torch.Tensor | None:
        return self.b.label_weights

    @property
    def mode_labels(self) -> torch.Tensor | None:
        return self.b.mode_labels

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.b.sample(n, generator)

    def sample_labelled(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.b.sample_labelled(n, generator)

    def reference(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.b.reference(n, generator)

    def labelled_reference(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.b.labelled_reference(n, generator)

    def to_original_range(self, images: torch.Tensor) -> torch.Tensor:
        return self.b.to_original_range(images)  # type: ignore[attr-defined]

    @classmethod
    def check_config(cls, params: DomainsParams, cfg: Config) -> str | None:
        for where, raw in (("a", params.a), ("b", params.b)):
            domain_piece(raw, where)
        return None


@DATASETS.register("domains", "two unpaired image domains a and b (any image datasets) for a translator; "
                   "scored as domain b", DomainsParams)
def build_domains(p: DomainsParams) -> Domains:
    built = []
    for where, raw in (("a", p.a), ("b", p.b)):
        piece, params = domain_piece(raw, where)
        built.append(DATASETS.get(piece.name)(params))
    return Domains(*built)


build_domains.check_config = Domains.check_config  # type: ignore[attr-defined]
