"""Errors the service turns into HTTP answers; each carries its status code."""

from __future__ import annotations

from ktstr.errors import UserError


class ServiceError(UserError):
    status_code: int = 400


class Unauthorized(ServiceError):
    status_code = 401


class Forbidden(ServiceError):
    status_code = 403


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409
