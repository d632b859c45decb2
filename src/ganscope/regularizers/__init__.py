"""Regularisers; importing this package registers the built-in ones."""

from ganscope.regularizers import gradient_penalty, style
from ganscope.regularizers.base import REGULARIZERS, Critic, Regularizer, RegularizerParams

__all__ = ["REGULARIZERS", "Critic", "Regularizer", "RegularizerParams", "gradient_penalty", "style"]
