"""What every ``ktstr sched`` verb module shares: the service client from ``--url``/
``--token`` (env KTSTR_SCHED_URL / KTSTR_SCHED_TOKEN, else the ``sched.url``/``sched.token``
preferences), the ``client_command`` decorator that adds them with ``--json``, and output.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ktstr.cli.app import App
from ktstr.errors import UserError

if TYPE_CHECKING:
    from ktstr.service.client import ServiceClient

F = TypeVar("F", bound=Callable[..., Any])


def connect(url: str | None, token: str | None) -> ServiceClient:
    from ktstr.cli.preference import get_preference
    from ktstr.service.client import ServiceClient

    url = url or get_preference("sched", "url")
    token = token or get_preference("sched", "token")
    if not url:
        raise UserError("no scheduler URL: pass --url, set KTSTR_SCHED_URL, or run "
                        "`ktstr preference set --category sched --name url URL`")
    if not token:
        raise UserError("no scheduler token: pass --token, set KTSTR_SCHED_TOKEN, or run "
                        "`ktstr preference set --category sched --name token TOKEN`")
    return ServiceClient(url, token)


def client_command(fn: F) -> F:
    """Add --url, --token and --json; pass ``client`` and ``as_json`` to the command."""

    @click.option("--url", envvar="KTSTR_SCHED_URL",
                  help="Scheduler URL (env KTSTR_SCHED_URL; default: preference sched.url).")
    @click.option("--token", envvar="KTSTR_SCHED_TOKEN",
                  help="User token (env KTSTR_SCHED_TOKEN; default: preference sched.token).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
    @functools.wraps(fn)
    def wrapper(url: str | None, token: str | None, as_json: bool, **kwargs: Any) -> Any:
        with connect(url, token) as client:
            return fn(client=client, as_json=as_json, **kwargs)

    return wrapper  # type: ignore[return-value]


def csv_list(value: str | None) -> list[str]:
    """The non-empty, stripped items of a comma-separated option."""
    return [p.strip() for p in (value or "").split(",") if p.strip()]


def dump(data: Any) -> None:
    """Print a model, or a list of models, as JSON."""
    if isinstance(data, list):
        App.echo_json([d.model_dump(mode="json") for d in data])
    else:
        App.echo_json(data.model_dump(mode="json"))
