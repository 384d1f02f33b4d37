"""Guest -> host messages: one JSON object per line on the ``ktstr.results``
virtio-serial port. The guest is a busybox shell, so free text travels base64-encoded
(``*_b64`` fields) and the host decodes it."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, ValidationError

from ktstr.declare.base import Frozen


def b64decode_text(data: str) -> str:
    try:
        return base64.b64decode(data.encode("ascii"), validate=False).decode(
            "utf-8", errors="replace"
        )
    except (binascii.Error, ValueError):
        return ""


class Hello(Frozen):
    """The init is up: the guest kernel booted and found the port."""

    t: Literal["hello"]
    uptime_s: float
    release: str = ""


class TopologyReport(Frozen):
    """Raw sysfs facts as text lines (parsed on the host, see ``guest.topology``)."""

    t: Literal["topology"]
    text_b64: str

    @property
    def text(self) -> str:
        return b64decode_text(self.text_b64)


class ExecResult(Frozen):
    t: Literal["exec"]
    status: int
    stdout_b64: str = ""
    stderr_b64: str = ""

    @property
    def stdout(self) -> str:
        return b64decode_text(self.stdout_b64)

    @property
    def stderr(self) -> str:
        return b64decode_text(self.stderr_b64)


class Log(Frozen):
    t: Literal["log"]
    msg: str


class Blob(Frozen):
    """A named piece of text (a log, a state dump) from the guest."""

    t: Literal["blob"]
    name: str
    text_b64: str

    @property
    def text(self) -> str:
        return b64decode_text(self.text_b64)


class Event(Frozen):
    """A timestamped event with string fields (scheduler lifecycle, phases)."""

    t: Literal["event"]
    name: str
    uptime_s: float = 0.0
    fields: dict[str, str] = Field(default_factory=dict)


class Done(Frozen):
    """The init finished its work and is about to power off."""

    t: Literal["done"]
    status: int = 0
    uptime_s: float = 0.0


GuestMessage = Annotated[
    Hello | TopologyReport | ExecResult | Log | Blob | Event | Done, Field(discriminator="t")
]
_ADAPTER: TypeAdapter[GuestMessage] = TypeAdapter(GuestMessage)


class BadMessage(Frozen):
    """A line that was not a valid message (kept for the report, never dropped)."""

    t: Literal["bad"] = "bad"
    line: str
    error: str


def parse_message(line: str) -> GuestMessage | BadMessage:
    """Parse one line from the port."""
    text = line.strip()
    try:
        return _ADAPTER.validate_python(json.loads(text))
    except (json.JSONDecodeError, ValidationError) as exc:
        return BadMessage(line=text[:500], error=str(exc).splitlines()[0])
