"""FairLock: the writer queue shared by threads and event-loop coroutines."""

from __future__ import annotations

import asyncio
import threading

from ktstr.service.db.engine import FairLock, HotSql


def test_a_coroutine_waits_without_blocking_its_loop_and_gets_the_slot_from_a_thread(
) -> None:
    lock = FairLock()
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with lock:
            held.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    assert held.wait(10)
    order: list[str] = []

    async def main() -> None:
        async def writer() -> None:
            await lock.enter_async()
            order.append("writer")
            lock.__exit__()

        task = asyncio.create_task(writer())
        await asyncio.sleep(0)  # the writer is queued behind the thread now
        order.append("loop still runs")
        release.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())
    t.join(10)
    assert order == ["loop still runs", "writer"]
    with lock:  # free again
        pass


def test_a_cancelled_waiter_passes_its_slot_on() -> None:
    lock = FairLock()

    async def main() -> list[str]:
        got: list[str] = []
        await lock.enter_async()  # held by main

        async def waiter(name: str) -> None:
            await lock.enter_async()
            got.append(name)
            lock.__exit__()

        first = asyncio.create_task(waiter("first"))
        second = asyncio.create_task(waiter("second"))
        await asyncio.sleep(0)
        first.cancel()
        lock.__exit__()
        await asyncio.wait_for(second, 10)
        await asyncio.gather(first, return_exceptions=True)
        return got

    assert asyncio.run(main()) == ["second"]
    with lock:
        pass


def test_a_waiter_granted_then_cancelled_passes_its_slot_on() -> None:
    lock = FairLock()

    async def main() -> None:
        await lock.enter_async()
        task = asyncio.create_task(lock.enter_async())
        await asyncio.sleep(0)
        lock.__exit__()  # granted (the grant is scheduled on the loop) ...
        await asyncio.sleep(0)
        task.cancel()  # ... and cancelled before the task resumes
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.wait_for(lock.enter_async(), 10)  # the slot was passed on
        lock.__exit__()

    asyncio.run(main())


def test_hot_sql_parameters_in_both_drivers_styles() -> None:
    stmt = HotSql("UPDATE jobs SET x = :now WHERE id = :id AND y = CAST(:r AS JSON)")
    assert stmt.sqlite.endswith("id = :id AND y = CAST(:r AS JSON)")
    assert stmt.postgres == ("UPDATE jobs SET x = %(now)s WHERE id = %(id)s AND "
                             "y = CAST(%(r)s AS JSON)")
    assert HotSql("SELECT a::text FROM t WHERE b = :b").postgres == (
        "SELECT a::text FROM t WHERE b = %(b)s")
