"""Datasets with mode oracles; importing this package registers the built-in ones."""

from ganscope.data import domains, files, image_files, images, mixture
from ganscope.data.base import (
    DATASETS,
    Dataset,
    FiniteDataset,
    ModeAssignment,
    ModeOracle,
    Reading,
    dataset_from_config,
    evaluation_size,
)

__all__ = [
    "DATASETS", "Dataset", "FiniteDataset", "ModeAssignment", "ModeOracle", "Reading", "dataset_from_config",
    "domains", "evaluation_size", "files", "image_files", "images", "mixture",
]
