"""``ktstr cache``: what the VM snapshot cache holds, and clearing it."""

from __future__ import annotations

import time

import click


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.0f} MB"


@click.group("cache", invoke_without_command=True)
@click.pass_context
def cache(ctx: click.Context) -> None:
    """Show the VM snapshot cache: one snapshot per VM key (kernel, base image, QEMU,
    accelerator, topology, memory, devices, kernel command line), least recently used
    first, with the cap (env KTSTR_SNAPSHOT_CACHE_MB). See docs/running.md, Snapshots.

    \b
    Examples:
      ktstr cache              # list snapshots and the total
      ktstr cache clear        # remove them all (the next VM of each key boots cold)
    """
    if ctx.invoked_subcommand is not None:
        return
    from ktstr.cli.output import table
    from ktstr.vm.snapshot import SnapshotStore

    store = SnapshotStore()
    entries = sorted(store.entries(), key=lambda e: e.last_used)
    click.echo(f"snapshots: {store.root}")
    if entries:
        now = time.time()
        rows = [[e.digest[:12], _mb(e.disk_bytes), f"{(now - e.last_used) / 60:.0f} min ago",
                 e.label if e.complete else "(incomplete: being made, or left by a crash)"]
                for e in entries]
        click.echo(table(["KEY", "DISK", "LAST USED", "VM"], rows))
    total = sum(e.disk_bytes for e in entries)
    click.echo(f"{len(entries)} snapshot(s), {_mb(total)} on disk, cap {_mb(store.cap_bytes)}")


@cache.command("clear")
def clear() -> None:
    """Remove every VM snapshot."""
    from ktstr.vm.snapshot import SnapshotStore

    n = SnapshotStore().clear()
    click.echo(f"removed {n} snapshot(s)")
