"""A minimal HTTP/1.1 keep-alive client for the dispatch benchmark's simulated workers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx


class _Reply(asyncio.Protocol):
    """One keep-alive connection's responses, parsed from the bytes as they arrive (no
    stream reader, no per-line reads): the status and the body of each."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buf[:end]).lower()
        length = 0
        at = head.find(b"\r\ncontent-length:")
        if at >= 0:
            eol = head.find(b"\r\n", at + 2)
            length = int(head[at + 17:eol if eol >= 0 else len(head)])
        if len(self.buf) < end + 4 + length:
            return
        body = bytes(self.buf[end + 4:end + 4 + length])
        del self.buf[:end + 4 + length]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((int(head[9:12]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("the service closed it"))


class RawHttp:
    """A minimal HTTP/1.1 keep-alive client (one connection, one request at a time,
    requests encoded once), so the simulated workers spend as little as possible of the
    CPUs they share with the service: httpx's AsyncClient costs about as much CPU per
    request as the service does, asyncio streams about a third of that."""

    def __init__(self, url: str, token: str) -> None:
        u = httpx.URL(url)
        self.host, self.port = u.host, u.port or 80
        self.auth = f"Bearer {token}".encode()
        self.conn: _Reply | None = None

    def encode(self, method: str, path: str, body: Any = None) -> bytes:
        """The bytes of one request (reusable: a worker's claim never changes)."""
        data = b"" if body is None else json.dumps(body).encode()
        return (b"%s /api/v1%s HTTP/1.1\r\nHost: bench\r\nAuthorization: %s\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (method.encode(), path.encode(), self.auth, len(data), data))

    async def send(self, request: bytes) -> tuple[int, Any]:
        if self.conn is None:
            transport, self.conn = await asyncio.get_running_loop().create_connection(
                _Reply, self.host, self.port)
            self.conn.transport = transport  # (uvloop may call connection_made later)
        conn = self.conn
        conn.waiter = asyncio.get_running_loop().create_future()
        assert conn.transport is not None
        conn.transport.write(request)
        status, payload = await conn.waiter
        return status, json.loads(payload) if payload else None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await self.send(self.encode(method, path, body))

    def close(self) -> None:
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.close()
