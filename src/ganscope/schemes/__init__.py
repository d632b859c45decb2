"""Training schemes; importing this package registers the built-in ones."""

from ganscope.schemes import alternating, ebgan, madgan, mrgan, unrolled
from ganscope.schemes.base import SCHEMES, Noise, Parts, Scheme

__all__ = ["SCHEMES", "Noise", "Parts", "Scheme", "alternating", "ebgan", "madgan", "mrgan", "unrolled"]
