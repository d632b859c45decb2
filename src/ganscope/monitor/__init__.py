"""The training monitor: named events (collapse, dropping, hopping, oscillation,
vanishing gradient, divergence, the loss signature) from a run's metrics, with the step
each started and a remedy to try. Importing this package registers the detectors."""

from ganscope.monitor.detectors import DETECTORS, Detector, Evaluation, Finding, History
from ganscope.monitor.monitor import Diversity, Event, Monitor, Remedy, describe_events

__all__ = [
    "DETECTORS",
    "Detector",
    "Diversity",
    "Evaluation",
    "Event",
    "Finding",
    "History",
    "Monitor",
    "Remedy",
    "describe_events",
]
