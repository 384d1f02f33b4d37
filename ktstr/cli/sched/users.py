"""``ktstr sched user-create|user-list|user-disable|token-rotate``: users and their
tokens."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import click

from ktstr.cli.output import table
from ktstr.cli.sched.helpers import client_command, dump
from ktstr.errors import UserError

if TYPE_CHECKING:
    from ktstr.service.client import ServiceClient
    from ktstr.service.schemas import UserCreated

_DAYS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*d\s*$")
TTL_HELP = ("The token expires after this long: 30d, 12h, 90m, 3600 (seconds); "
            "default: never.")


def parse_ttl(text: str | None) -> float | None:
    """Seconds of a ``--token-ttl`` (``30d``, ``12h``, ``1h30m``, ``3600``) (pure)."""
    from ktstr.service.plan import parse_duration

    if text is None:
        return None
    m = _DAYS.match(text)
    if m:
        seconds = float(m.group(1)) * 86400
        if seconds <= 0:
            raise UserError(f"--token-ttl must be positive, got {text!r}")
        return seconds
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UserError(f"--token-ttl: {exc} (or days: 30d)") from exc


def _print_token(user: UserCreated, verb: str) -> None:
    from ktstr.service.render import when

    click.echo(f"{verb} user {user.name!r} with capabilities "
               f"{','.join(c.value for c in user.capabilities)}")
    click.echo(f"Token: {user.token}")
    if user.token_expires_at is not None:
        click.echo(f"The token expires {when(user.token_expires_at)}.")


@click.command("user-create")
@click.argument("name")
@click.option("--capabilities", required=True,
              help="Comma-separated: exec, query, lease, admin.")
@click.option("--token-ttl", default=None, help=TTL_HELP)
@client_command
def user_create(client: ServiceClient, as_json: bool, name: str, capabilities: str,
                token_ttl: str | None) -> None:
    """Create a user and print its token (shown only once)."""
    from ktstr.service.auth import parse_capabilities

    user = client.create_user(name, sorted(parse_capabilities(capabilities)),
                              parse_ttl(token_ttl))
    if as_json:
        dump(user)
        return
    _print_token(user, "Created")


@click.command("user-list")
@client_command
def user_list(client: ServiceClient, as_json: bool) -> None:
    """Every user (admin): capabilities, created, disabled, token expiry."""
    from ktstr.service.render import when

    users = client.users()
    if as_json:
        dump(users)
        return
    click.echo(table(["ID", "NAME", "CAPABILITIES", "CREATED", "DISABLED", "TOKEN EXPIRES"],
                     [[str(u.id), u.name, ",".join(c.value for c in u.capabilities),
                       when(u.created_at), when(u.disabled_at),
                       when(u.token_expires_at) if u.token_expires_at else "never"]
                      for u in users]))


@click.command("user-disable")
@click.argument("name")
@client_command
def user_disable(client: ServiceClient, as_json: bool, name: str) -> None:
    """Disable NAME (admin): its token is refused from now on; its plans and leases stay
    in the history, its queued and running plans are cancelled (running jobs finish) and
    its leases end."""
    out = client.disable_user(name)
    if as_json:
        dump(out)
        return
    click.echo(f"User {out.user.name!r} disabled; cancelled plans: "
               f"{', '.join(map(str, out.cancelled_plans)) or 'none'}; ended leases: "
               f"{', '.join(map(str, out.ended_leases)) or 'none'}")


@click.command("token-rotate")
@click.argument("name", required=False)
@click.option("--token-ttl", default=None, help=TTL_HELP)
@client_command
def token_rotate(client: ServiceClient, as_json: bool, name: str | None,
                 token_ttl: str | None) -> None:
    """Give NAME (default: you) a new token and print it; the old one stops working at
    once. Your own token needs any capability; another user's needs admin."""
    who = name or client.whoami().name
    user = client.rotate_token(who, parse_ttl(token_ttl))
    if as_json:
        dump(user)
        return
    _print_token(user, "New token for")
    if name is None:
        click.echo("Save it: `ktstr preference set --category sched --name token TOKEN`")
