"""Network registries.

A generator maps noise (S, B, z_dim) to samples (S, B, *sample_shape); a discriminator
maps samples to logits (S, B', n_outputs), with B' = B unless a modifier groups samples
(packing gives one logit per pack). S is the population's seed axis. A
discriminator sets `batch_coupled = True` when one sample's output depends on the other
samples of its batch (batch norm, minibatch features), so schemes never merge the real
and fake batches into one forward pass for it.

Discriminator builders take `(params, n_seeds, sample_shape, n_outputs, extensions=())`
and build a `ganscope.nets.discriminator.Discriminator`; discriminator modifiers
(`d_modifiers` in the config, `ganscope.nets.modifiers`) change any of them.

A conditioning (`ganscope.nets.conditioning`) makes both players class-conditional: a
conditional generator is called as G(z, labels) and every discriminator as D(x, labels),
labels (S, B) int64; an unconditional D ignores labels.
"""

from ganscope.registry import new_registry

GENERATORS = new_registry("generator", "generators")
DISCRIMINATORS = new_registry("discriminator", "discriminators")
D_MODIFIERS = new_registry("discriminator modifier", "d_modifiers")
CONDITIONINGS = new_registry("conditioning", "conditionings")
