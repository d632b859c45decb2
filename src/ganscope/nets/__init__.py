"""Networks; importing this package registers the built-in ones."""

from ganscope.nets import mlp
from ganscope.nets.base import DISCRIMINATORS, GENERATORS
from ganscope.nets.layers import PopBatchNorm, PopLinear, PopulationModule, init_population

__all__ = ["DISCRIMINATORS", "GENERATORS", "PopBatchNorm", "PopLinear", "PopulationModule", "init_population", "mlp"]
