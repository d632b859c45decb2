"""Datasets with mode oracles; importing this package registers the built-in ones."""

from ganscope.data import files, images, mixture
from ganscope.data.base import DATASETS, Dataset, FiniteDataset, ModeAssignment, ModeOracle, dataset_from_config

__all__ = ["DATASETS", "Dataset", "FiniteDataset", "ModeAssignment", "ModeOracle", "dataset_from_config", "files", "images", "mixture"]
