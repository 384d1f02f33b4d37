"""``CorkedTransport``: the writes of one event-loop turn leave in one send."""

from __future__ import annotations

import asyncio
from typing import Any

from ktstr.service.server import CorkedTransport


class _Recorder(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.sent.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def test_a_response_written_in_two_parts_leaves_in_one_send() -> None:
    async def main() -> list[bytes]:
        raw = _Recorder()
        t = CorkedTransport(raw)
        t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        t.write(b"{}")
        assert raw.sent == []  # not before the turn ends
        await asyncio.sleep(0)
        t.write(b"next")
        await asyncio.sleep(0)
        return raw.sent

    assert asyncio.run(main()) == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
                                   b"next"]


def test_close_sends_what_is_pending_first() -> None:
    async def main() -> _Recorder:
        raw = _Recorder()
        t = CorkedTransport(raw)
        t.write(b"bye")
        t.close()
        await asyncio.sleep(0)  # the scheduled flush finds nothing left
        return raw

    raw = asyncio.run(main())
    assert raw.sent == [b"bye"] and raw.closed
