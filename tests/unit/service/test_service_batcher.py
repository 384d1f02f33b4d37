"""``Batcher``: requests that arrive while a batch runs go together in the next one."""

from __future__ import annotations

import asyncio

import pytest

from ktstr.service.batch import Batcher
from ktstr.service.db.jobs import batch_rounds


def test_requests_arriving_during_a_batch_form_the_next_one() -> None:
    seen: list[list[int]] = []
    release = asyncio.Event()

    async def run(items: list[int]) -> list[int]:
        seen.append(items)
        if len(seen) == 1:
            await release.wait()  # the first batch is "in the database"
        return [i * 10 for i in items]

    async def main() -> list[int]:
        b: Batcher[int, int] = Batcher(run, slots=1)
        first = asyncio.ensure_future(b(1))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        rest = [asyncio.ensure_future(b(i)) for i in (2, 3, 4)]
        await asyncio.sleep(0)
        release.set()
        return [await first, *[await r for r in rest]]

    assert asyncio.run(main()) == [10, 20, 30, 40]
    assert seen == [[1], [2, 3, 4]]


def test_a_lone_request_does_not_wait_for_company() -> None:
    async def run(items: list[str]) -> list[str]:
        return [s.upper() for s in items]

    async def main() -> str:
        return await Batcher(run)("a")

    assert asyncio.run(main()) == "A"


def test_batches_are_capped_and_use_their_slots() -> None:
    sizes: list[int] = []
    running = 0
    most = 0

    async def run(items: list[int]) -> list[int]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        sizes.append(len(items))
        await asyncio.sleep(0)
        running -= 1
        return items

    async def main() -> list[int]:
        b: Batcher[int, int] = Batcher(run, slots=2, max_size=3)
        return list(await asyncio.gather(*(b(i) for i in range(10))))

    assert asyncio.run(main()) == list(range(10))
    assert max(sizes) <= 3 and sum(sizes) == 10 and most == 2


def test_a_failing_batch_fails_each_of_its_requests_and_the_next_one_runs() -> None:
    calls = 0

    async def run(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database gone")
        return items

    async def main() -> tuple[list[BaseException | int], int]:
        b: Batcher[int, int] = Batcher(run)
        first = await asyncio.gather(b(1), b(2), return_exceptions=True)
        return list(first), await b(3)

    first, after = asyncio.run(main())
    assert all(isinstance(e, RuntimeError) for e in first) and after == 3


def test_a_cancelled_caller_does_not_disturb_its_batch() -> None:
    async def run(items: list[int]) -> list[int]:
        await asyncio.sleep(0.01)
        return items

    async def main() -> int:
        b: Batcher[int, int] = Batcher(run)
        gone = asyncio.ensure_future(b(1))
        stays = asyncio.ensure_future(b(2))
        await asyncio.sleep(0)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await stays

    assert asyncio.run(main()) == 2


def test_rounds_never_repeat_a_key() -> None:
    assert batch_rounds([1, 2, 1, 3, 1, 2]) == [[0, 1, 3], [2, 5], [4]]
    assert batch_rounds([]) == []
