"""Encoders and autoencoders, population-batched.

An encoder maps samples (S, B, *sample_shape) to codes (S, B, code_dim); an autoencoder
returns the reconstruction Dec(Enc(x)) and the code Enc(x). The EBGAN discriminator
(Zhao et al. 2017, Sec. 2.3) is an autoencoder whose reconstruction error is the energy,
and MR-GAN (Che et al. 2017) learns an encoder E beside G.

Neither needs new layers: a discriminator body with a `code_dim`-wide head is an encoder,
and a generator fed codes instead of noise is a decoder. `AUTOENCODERS` registers, under
a discriminator architecture's name, the autoencoder built from that architecture's
parameters, so EBGAN's autoencoder follows `discriminator.*` in the config.
"""

from __future__ import annotations

import torch
from torch import nn

from ganscope.nets.mlp import MLPDiscriminator, MLPDiscriminatorParams, MLPGenerator, MLPParams
from ganscope.registry import new_registry

AUTOENCODERS = new_registry("autoencoder", "autoencoders")


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


def mlp_encoder(n_seeds: int, sample_shape: tuple[int, ...], code_dim: int, p: MLPParams) -> MLPDiscriminator:
    """The MLP discriminator with `code_dim` outputs: hidden stack on the flattened sample,
    then a linear head, which is exactly an MLP encoder."""
    return MLPDiscriminator(n_seeds, sample_shape, code_dim, MLPDiscriminatorParams.model_validate(p.model_dump()))


@AUTOENCODERS.register(
    "mlp", "MLP encoder to a code, MLP decoder back (EBGAN's discriminator for discriminator.name=mlp)",
    MLPDiscriminatorParams,
)
def build_mlp_autoencoder(
    p: MLPDiscriminatorParams, n_seeds: int, sample_shape: tuple[int, ...], code_dim: int
) -> Autoencoder:
    """Encoder and decoder mirror each other: `depth` hidden layers of width `hidden` each."""
    return Autoencoder(
        mlp_encoder(n_seeds, sample_shape, code_dim, p),
        MLPGenerator(n_seeds, code_dim, sample_shape, p),
        batch_coupled=p.batch_norm,
    )
