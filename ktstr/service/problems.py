"""How the service answers an error: one mapping from exception to HTTP problem
(``{"detail": ..., "problems": [...]}``), used by the FastAPI app's exception handlers and
by the hot path (``ktstr.service.hotpath``) alike."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

from ktstr.errors import UserError
from ktstr.service.errors import ServiceError
from ktstr.service.planner import PlanError
from ktstr.service.states import InvalidTransition

#: the exception types ``problem_of`` answers (every other one is a server error)
ANSWERED: tuple[type[Exception], ...] = (UserError, OverflowError, DataError)


def problem(status: int, detail: str, problems: list[str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status,
                        content={"detail": detail, "problems": problems or []})


def problem_of(exc: Exception) -> JSONResponse | None:
    """The answer to ``exc``, or None when it is not one the service answers (a 500)."""
    if isinstance(exc, PlanError):
        return problem(422, str(exc), exc.problems)
    if isinstance(exc, InvalidTransition):
        return problem(409, str(exc))
    if isinstance(exc, ServiceError):
        return problem(exc.status_code, str(exc))
    if isinstance(exc, UserError):
        return problem(400, str(exc))
    if isinstance(exc, OverflowError | DataError):
        # a number the database cannot hold (e.g. an id beyond 64 bits) names no row
        return problem(422, "invalid request: a number is out of the database's range")
    return None
