"""The two seed ranges of docs/PROTOCOLS.md ("Seeds").

Settings chosen while looking at some seeds flatter those seeds, so the numbers ganscope
publishes come from seeds that no choice was ever made on. Plain ranges without torch,
so the command line can show them in its help without importing the trainer.
"""

from __future__ import annotations

TUNING_SEEDS = range(0, 1000)
"""Seeds that settings, budgets and methods may be chosen on (the demo, the profiles,
the bench budgets and the first tables were all looked at on seeds 0-9)."""

EVALUATION_SEEDS = range(1000, 2000)
"""Seeds that no choice is ever made on: the published tables come from these."""

DEFAULT_BASE_SEED = EVALUATION_SEEDS.start


def span(seeds: range) -> str:
    """`first-last` of a range of seeds (or the one seed), as the help and the tables print it."""
    return str(seeds.start) if len(seeds) == 1 else f"{seeds.start}-{seeds.stop - 1}"
