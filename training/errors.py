"""training's errors. Each message says what to do; the CLI ends with exit status 2 on a TrainingInputError (the
user's own setting, run id or base path) and 1 on the others. Each also keeps the builtin base it always had, for
callers that catch that."""
from __future__ import annotations


class TrainingError(Exception):
    """A training, packaging or eval step that cannot go on."""


class TrainingInputError(TrainingError):
    """Something the user named or set that cannot be used, as opposed to work that failed."""


class RunFailed(TrainingError):
    """A run stopped on an error it recorded in its registry entry (the cause is chained)."""


class TrainingConfigError(TrainingInputError, ValueError):
    pass


class BaseModelError(TrainingInputError, ValueError):
    pass


class NoTrainingData(TrainingError, ValueError):
    pass


class RunNotFound(TrainingInputError, LookupError):
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
