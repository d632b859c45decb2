"""Network registries.

A generator maps noise (S, B, z_dim) to samples (S, B, *sample_shape); a discriminator
maps samples to logits (S, B, n_outputs). S is the population's seed axis. A
discriminator sets `batch_coupled = True` when one sample's output depends on the other
samples of its batch (batch norm, minibatch features), so schemes never merge the real
and fake batches into one forward pass for it.
"""

from ganscope.registry import new_registry

GENERATORS = new_registry("generator", "generators")
DISCRIMINATORS = new_registry("discriminator", "discriminators")
