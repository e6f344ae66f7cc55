"""Domain errors with stable codes; the API and the CLI map them to answers in one place."""

from __future__ import annotations


class TallyflowError(Exception):
    """Base of domain errors. `code` is stable and machine-readable."""

    code = "error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(TallyflowError):
    code = "not_found"
    status = 404


class Conflict(TallyflowError):
    code = "conflict"
    status = 409


class InvalidInput(TallyflowError):
    code = "invalid_input"
    status = 422


class Unauthorized(TallyflowError):
    code = "unauthorized"
    status = 401


class Forbidden(TallyflowError):
    code = "forbidden"
    status = 403


class PayloadTooLarge(TallyflowError):
    code = "payload_too_large"
    status = 413
