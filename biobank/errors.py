"""Domain errors raised by services; the API and pages turn them into responses."""

from __future__ import annotations

from typing import Any


class BiobankError(Exception):
    """Base of every domain error.

    ``field`` names the input that is wrong (``"pos_row"``, ``"rows[12].barcode"``) so a client
    can point at it; ``extra`` carries structured detail such as the allowed actions.
    """

    status = 400
    title = "Bad request"

    def __init__(self, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra


class InvalidInput(BiobankError):
    status = 422
    title = "Invalid input"


class InvalidFilter(BiobankError):
    """A cohort query's filter, level or facets that cannot be read (400, like GDC)."""

    status = 400
    title = "Invalid filter"


class NotFound(BiobankError):
    status = 404
    title = "Not found"


class Conflict(BiobankError):
    status = 409
    title = "Conflict"


class InvalidState(Conflict):
    title = "Invalid state"


class PermissionDenied(BiobankError):
    status = 403
    title = "Forbidden"


class AuthenticationRequired(BiobankError):
    status = 401
    title = "Authentication required"


class TooManyAttempts(BiobankError):
    status = 429
    title = "Too many attempts"
