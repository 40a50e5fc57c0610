"""training's errors. Each message says what to do; the CLI ends with exit status 1 on any of them. Each also keeps
the builtin base it always had, for callers that catch that."""
from __future__ import annotations


class TrainingError(Exception):
    """A training, packaging or eval step that cannot go on."""


class RunFailed(TrainingError):
    """A run stopped on an error it recorded in its registry entry (the cause is chained)."""


class TrainingConfigError(TrainingError, ValueError):
    pass


class BaseModelError(TrainingError, ValueError):
    pass


class NoTrainingData(TrainingError, ValueError):
    pass


class RunNotFound(TrainingError, LookupError):
    pass


class OllamaUnavailable(TrainingError, RuntimeError):
    pass


class HostedJobFailed(TrainingError, RuntimeError):
    pass


class ConverterMissing(TrainingError, RuntimeError):
    pass


class ConversionFailed(TrainingError, RuntimeError):
    pass


class ConversionMismatch(TrainingError, RuntimeError):
    pass
