"""Exceptions raised by the treatment-effect estimators."""

from __future__ import annotations


class EffectsInputError(ValueError):
    """The input table cannot be used to estimate a treatment effect.

    The message names the offending columns, rows or values and what to change.
    """


class IdentifierColumnsError(EffectsInputError):
    """Columns that look like row identifiers would become covariates.

    :ivar columns: the names of those columns.
    """

    def __init__(self, message: str, columns: list[str]) -> None:
        super().__init__(message)
        self.columns = columns


class TrainingDivergedError(RuntimeError):
    """Training produced a NaN, infinite or exploding loss, even after a retry.

    :ivar attempts: one ``(learning_rate, epoch, reason)`` tuple per failed attempt,
        where ``epoch`` counts from 1.
    """

    def __init__(self, message: str, attempts: list[tuple[float, int, str]]) -> None:
        super().__init__(message)
        self.attempts = attempts
