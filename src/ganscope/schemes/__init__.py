"""Training schemes; importing this package registers the built-in ones."""

from ganscope.schemes import alternating, cyclegan, ebgan, madgan, mrgan, unrolled
from ganscope.schemes.base import SCHEMES, Noise, Parts, Scheme, TwoPlayer, TwoPlayerParams

__all__ = [
    "SCHEMES",
    "Noise",
    "Parts",
    "Scheme",
    "TwoPlayer",
    "TwoPlayerParams",
    "alternating",
    "cyclegan",
    "ebgan",
    "madgan",
    "mrgan",
    "unrolled",
]
