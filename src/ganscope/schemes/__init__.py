"""Training schemes; importing this package registers the built-in ones."""

from ganscope.schemes import alternating, ebgan, madgan, mrgan, unrolled
from ganscope.schemes.base import SCHEMES, Noise, Parts, Scheme, TwoPlayer, TwoPlayerParams

__all__ = [
    "SCHEMES",
    "Noise",
    "Parts",
    "Scheme",
    "TwoPlayer",
    "TwoPlayerParams",
    "alternating",
    "ebgan",
    "madgan",
    "mrgan",
    "unrolled",
]
