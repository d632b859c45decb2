"""Encoders and autoencoders, population-batched, for points and for images.

An encoder maps samples (S, B, *sample_shape) to codes (S, B, code_dim); an autoencoder
returns the reconstruction Dec(Enc(x)) and the code Enc(x). The EBGAN discriminator
(Zhao et al. 2017, Sec. 2.3) is an autoencoder whose reconstruction error is the energy,
and MR-GAN (Che et al. 2017) learns an encoder E beside G.

Neither needs new layers: a discriminator with a `code_dim`-wide head is an encoder, and a
generator fed codes instead of noise is a decoder. So the MLP encoder is the MLP
discriminator, and the convolutional one is the DCGAN discriminator (stride-2
convolutions down to the smallest maps, then a linear head to the code), with its stage
logic, initialisation and per-seed batch norm unchanged; the convolutional decoder is the
DCGAN generator (a linear projection of the code, then stride-2 transposed convolutions
up to the image, tanh). Two registries, keyed by architecture:

- `ENCODERS`: the encoder an architecture builds from its own parameters; MR-GAN's
  `scheme.encoder` names one, or `auto`, which takes `dcgan` for images and `mlp` for
  anything else (`resolve_encoder`).
- `AUTOENCODERS`: the autoencoder built from a discriminator architecture's parameters,
  so EBGAN's autoencoder follows `discriminator.*` in the config: `discriminator.name=dcgan`
  gives the convolutional one.
"""

from __future__ import annotations

import torch
from pydantic import ValidationError, field_validator
from torch import nn

from ganscope.config import Piece, describe_validation_error
from ganscope.errors import ConfigError
from ganscope.nets.dcgan import (
    DCGANDiscriminator,
    DCGANDiscriminatorParams,
    DCGANGenerator,
    DCGANParams,
    is_image_shape,
)
from ganscope.nets.mlp import MLPDiscriminator, MLPDiscriminatorParams, MLPGenerator, MLPParams
from ganscope.registry import Params, new_registry

ENCODERS = new_registry("encoder", "encoders")
AUTOENCODERS = new_registry("autoencoder", "autoencoders")

#: The `name` under which an encoder's architecture follows the samples' shape.
AUTO = "auto"


class Autoencoder(nn.Module):
    """x (S, B, *sample_shape) -> (Dec(Enc(x)) of the same shape, Enc(x) (S, B, code_dim))."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, batch_coupled: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        #: True when one sample's output depends on its batch (batch norm), as for discriminators.
        self.batch_coupled = batch_coupled

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.encoder(x)
        return self.decoder(code), code


# ---- encoders ---------------------------------------------------------------------------


@ENCODERS.register("mlp", "MLP encoder: the MLP discriminator with a code-wide head", MLPParams)
def mlp_encoder(p: MLPParams, n_seeds: int, sample_shape: tuple[int, ...], code_dim: int) -> MLPDiscriminator:
    """The MLP discriminator with `code_dim` outputs: hidden stack on the flattened sample,
    then a linear head, which is exactly an MLP encoder."""
    return MLPDiscriminator(n_seeds, sample_shape, code_dim, MLPDiscriminatorParams.model_validate(p.model_dump()))


@ENCODERS.register(
    "dcgan", "convolutional encoder: the DCGAN discriminator's stride-2 stages with a code-wide head", DCGANParams
)
def dcgan_encoder(p: DCGANParams, n_seeds: int, sample_shape: tuple[int, ...], code_dim: int) -> DCGANDiscriminator:
    """The DCGAN discriminator with `code_dim` outputs: stride-2 convolutions halve the
    image down to its smallest maps, which a linear layer maps to the code."""
    return DCGANDiscriminator(DCGANDiscriminatorParams.model_validate(p.model_dump()), n_seeds, sample_shape, code_dim)


class EncoderChoice(Piece):
    """An encoder architecture (`name`: `auto` or one of `ENCODERS`) and that
    architecture's parameters beside it, e.g. `{name: dcgan, width: 16}`; with `auto` the
    parameters are those of the architecture the samples' shape selects."""

    name: str = AUTO

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name != AUTO and name not in ENCODERS:
            raise ValueError(f"unknown encoder {name!r}; valid: {', '.join([AUTO, *ENCODERS.names()])}")
        return name


def resolve_encoder(name: str, sample_shape: tuple[int, ...]) -> str:
    """The encoder architecture `name` means for samples of `sample_shape`: `auto` is
    `dcgan` for images (channels, height, width), whose convolutions share weights across
    pixels and see neighbourhoods, and `mlp` for points."""
    if name != AUTO:
        return name
    return "dcgan" if is_image_shape(sample_shape) else "mlp"


def encoder_params(choice: EncoderChoice, architecture: str, where: str) -> Params:
    """`choice`'s options validated as `architecture`'s parameters; a bad key or value is
    a one-line `ConfigError` naming it under `where` (e.g. `scheme.encoder`)."""
    model = ENCODERS.entry(architecture).params
    try:
        return model.model_validate(choice.options())
    except ValidationError as err:
        described = describe_validation_error(err, model, prefix=where)
        raise ConfigError(f"{described} (the {architecture} encoder's parameters)") from None


def build_encoder(
    choice: EncoderChoice, n_seeds: int, sample_shape: tuple[int, ...], code_dim: int, where: str
) -> nn.Module:
    """The encoder `choice` names, for samples of `sample_shape`, to codes of `code_dim`."""
    architecture = resolve_encoder(choice.name, sample_shape)
    params = encoder_params(choice, architecture, where)
    return ENCODERS.get(architecture)(params, n_seeds, sample_shape, code_dim)


# ---- autoencoders -----------------------------------------------------------------------


@AUTOENCODERS.register(
    "mlp", "MLP encoder to a code, MLP decoder back (EBGAN's discriminator for discriminator.name=mlp)",
    MLPDiscriminatorParams,
)
def build_mlp_autoencoder(
    p: MLPDiscriminatorParams, n_seeds: int, sample_shape: tuple[int, ...], code_dim: int
) -> Autoencoder:
    """Encoder and decoder mirror each other: `depth` hidden layers of width `hidden` each."""
    return Autoencoder(
        mlp_encoder(p, n_seeds, sample_shape, code_dim),
        MLPGenerator(n_seeds, code_dim, sample_shape, p),
        batch_coupled=p.batch_norm,
    )


@AUTOENCODERS.register(
    "dcgan", "DCGAN convolutional encoder to a code, DCGAN generator back (EBGAN's discriminator for "
    "discriminator.name=dcgan)", DCGANDiscriminatorParams,
)
def build_dcgan_autoencoder(
    p: DCGANDiscriminatorParams, n_seeds: int, sample_shape: tuple[int, ...], code_dim: int
) -> Autoencoder:
    """EBGAN's convolutional autoencoder (Zhao et al. 2017, Sec. 2.3 and 4, its LSUN, CelebA
    and ImageNet discriminators): stride-2 4x4 convolutions down, stride-2 4x4 transposed
    convolutions back up, mirroring each other, as DCGAN's D and G do. Here the encoder is the DCGAN
    discriminator with a `code_dim`-wide linear head and the decoder the DCGAN generator
    of the same `width` and `depth` fed the code; the paper's autoencoders pass the
    smallest feature maps straight to the decoder instead, without the linear bottleneck.
    `spectral_norm` normalises the encoder's layers (the DCGAN generator has none);
    `batch_norm` applies to both halves, and then couples the samples of a batch."""
    decoder_params = DCGANParams.model_validate(p.model_dump(exclude={"spectral_norm"}))
    return Autoencoder(
        DCGANDiscriminator(p, n_seeds, sample_shape, code_dim),
        DCGANGenerator(decoder_params, n_seeds, code_dim, sample_shape),
        batch_coupled=p.batch_norm,
    )

