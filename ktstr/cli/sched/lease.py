"""``ktstr sched lease-*`` and ``ktstr sched usage``: manual SUT leases and usage reports.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING

import click

from ktstr.cli.output import table
from ktstr.cli.sched.helpers import client_command, csv_list, dump
from ktstr.errors import UserError

if TYPE_CHECKING:
    from ktstr.service.client import ServiceClient
    from ktstr.service.leases import LeaseOut

#: one long-poll of ``lease-acquire --wait``; progress is printed between polls
WAIT_POLL_S = 20.0


def _describe(lease: LeaseOut) -> str:
    from ktstr.service.render import when

    lines = [f"Lease {lease.id}: {lease.state.value} (SUT class {lease.sutclass}, "
             f"owner {lease.owner}, priority {lease.priority})"]
    if lease.sut:
        lines.append(f"  SUT: {lease.sut}")
    if lease.connection:
        params = lease.connection.get("params") or {}
        detail = " ".join(f"{k}={v}" for k, v in sorted(dict(params).items()))  # type: ignore[call-overload]
        lines.append(f"  connection: {lease.connection.get('method')} {detail}".rstrip())
    if lease.expires_at:
        lines.append(f"  expires: {when(lease.expires_at)} (renew with "
                     f"`ktstr sched lease-renew {lease.id}`)")
    if lease.reason:
        lines.append(f"  reason: {lease.reason}")
    return "\n".join(lines)


@click.command("lease-acquire")
@click.argument("sutclass")
@click.option("--wait", is_flag=True, help="Block until a SUT is assigned.")
@click.option("--priority", type=click.IntRange(0, 100), default=0, show_default=True,
              help="0-100; leases and jobs of a class are served by priority, then age.")
@client_command
def lease_acquire(client: ServiceClient, as_json: bool, sutclass: str, wait: bool,
                  priority: int) -> None:
    """Request a lease on one SUT of SUTCLASS and print it. Interrupted while waiting
    (Ctrl-C, SIGTERM), it cancels the lease it asked for."""
    from ktstr.service.states import LeaseState

    lease = client.acquire_lease(sutclass, priority)
    if wait and lease.state is LeaseState.QUEUED:
        lease = _wait_for(client, lease, sutclass)
    if as_json:
        dump(lease)
    else:
        click.echo(_describe(lease))


class _Terminated(Exception):
    """SIGTERM during ``lease-acquire --wait``."""


def _wait_for(client: ServiceClient, lease: LeaseOut, sutclass: str) -> LeaseOut:
    """Long-poll until the lease leaves ``queued``; on Ctrl-C or SIGTERM release
    (cancel) it, so no forgotten lease is granted later, and exit 130/143."""
    import signal

    from ktstr.service.states import LeaseState

    def on_term(_sig: int, _frame: object) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, on_term)
    started = time.monotonic()
    try:
        while lease.state is LeaseState.QUEUED:
            click.echo(f"lease {lease.id} queued for {sutclass}, waiting for a SUT "
                       f"({time.monotonic() - started:.0f}s)...", err=True)
            lease = client.lease(lease.id, wait_s=WAIT_POLL_S)
    except (KeyboardInterrupt, _Terminated) as exc:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finish cancelling
        ended = client.release_lease(lease.id)
        click.echo(f"lease {ended.id} {ended.state.value}: interrupted while waiting",
                   err=True)
        raise SystemExit(130 if isinstance(exc, KeyboardInterrupt) else 143) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    return lease


@click.command("lease-list")
@click.argument("lease_id", type=int, required=False)
@click.option("--states", help="Comma-separated lease states (default: queued,acquired).")
@click.option("--users", help="Comma-separated user names (default: you).")
@click.option("--all-users", is_flag=True, help="Leases of every user.")
@click.option("--all-states", is_flag=True, help="Leases in every state.")
@client_command
def lease_list(client: ServiceClient, as_json: bool, lease_id: int | None,
               states: str | None, users: str | None, all_users: bool,
               all_states: bool) -> None:
    """Leases with owner, SUT class, state, SUT and times."""
    from ktstr.service.render import when

    if lease_id is not None:
        found = [client.lease(lease_id)]
    else:
        found = client.leases(states=csv_list(states), users=csv_list(users), all_users=all_users,
                              all_states=all_states)
    if as_json:
        dump(found)
        return
    click.echo(table(["ID", "OWNER", "SUTCLASS", "STATE", "SUT", "PRIORITY", "REQUESTED",
                      "ACQUIRED", "EXPIRES", "ENDED"],
                     [[str(x.id), x.owner, x.sutclass, x.state.value, x.sut or "-",
                       str(x.priority), when(x.requested_at), when(x.acquired_at),
                       when(x.expires_at), when(x.ended_at)] for x in found]))


@click.command("lease-release")
@click.argument("lease_id", type=int)
@client_command
def lease_release(client: ServiceClient, as_json: bool, lease_id: int) -> None:
    """Release a lease (a queued one is cancelled); its SUT returns to the pool."""
    lease = client.release_lease(lease_id)
    if as_json:
        dump(lease)
    else:
        click.echo(f"Lease {lease.id} {lease.state.value}")


@click.command("lease-renew")
@click.argument("lease_id", type=int)
@click.option("--every", type=float, default=None,
              help="Keep renewing every SECONDS until interrupted (a holder's heartbeat).")
@client_command
def lease_renew(client: ServiceClient, as_json: bool, lease_id: int,
                every: float | None) -> None:
    """Push an acquired lease's expiry to now + the service's lease maximum."""
    import threading

    if every is not None and every <= 0:
        raise UserError("--every must be positive")
    stop = threading.Event()
    while True:
        lease = client.renew_lease(lease_id)
        if as_json:
            dump(lease)
        else:
            from ktstr.service.render import when

            click.echo(f"Lease {lease.id} renewed until {when(lease.expires_at)}")
        if every is None or stop.wait(every):
            return


def _epoch_arg(value: datetime | None) -> datetime | None:
    return value.astimezone() if value is not None else None


@click.command("usage")
@click.option("--from", "start", type=click.DateTime(), default=None,
              help="Start of the window (default: 7 days before --to).")
@click.option("--to", "end", type=click.DateTime(), default=None,
              help="End of the window (default: now).")
@click.option("--by", type=click.Choice(["sut", "user", "sutclass"]), default="sut",
              show_default=True, help="Group rows by SUT, user or SUT class.")
@client_command
def usage(client: ServiceClient, as_json: bool, start: datetime | None,
          end: datetime | None, by: str) -> None:
    """Busy %, jobs run and failure rate, busiest first (which SUTs are used and fail most)."""
    rows = client.usage(by, _epoch_arg(start), _epoch_arg(end))
    if as_json:
        dump(rows)
        return
    click.echo(table([by.upper(), "SUTS", "BUSY", "JOBS", "FAILED", "FAILURE RATE", "LEASES"],
                     [[r.key, str(r.suts), f"{r.busy * 100:.1f}%", str(r.jobs),
                       str(r.failed_jobs),
                       "-" if r.failure_rate is None else f"{r.failure_rate * 100:.1f}%",
                       str(r.leases)] for r in rows]))
