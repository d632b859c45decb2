"""Networks; importing this package registers the built-in ones."""

from ganscope.nets import autoencoder, conditioning, cyclegan, dcgan, mlp, modifiers, stylegan
from ganscope.nets.autoencoder import AUTOENCODERS, Autoencoder
from ganscope.nets.base import D_MODIFIERS, DISCRIMINATORS, GENERATORS
from ganscope.nets.discriminator import Discriminator, FeatureExtension
from ganscope.nets.layers import PopBatchNorm, PopLinear, PopulationModule, init_population

__all__ = [
    "AUTOENCODERS",
    "Autoencoder",
    "DISCRIMINATORS",
    "D_MODIFIERS",
    "Discriminator",
    "FeatureExtension",
    "GENERATORS",
    "PopBatchNorm",
    "PopLinear",
    "PopulationModule",
    "autoencoder",
    "conditioning",
    "cyclegan",
    "dcgan",
    "init_population",
    "mlp",
    "modifiers",
    "stylegan",
]
