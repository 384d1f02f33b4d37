"""How long-running kernel and scheduler steps report progress (only the CLI prints)."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def step(self, message: str) -> None:
        """A new step started (resolve, download, extract, build ...)."""

    def transfer(self, label: str, done: int, total: int | None) -> None:
        """Bytes moved so far for ``label``; ``total`` when known."""


class NullProgress:
    def step(self, message: str) -> None:
        pass

    def transfer(self, label: str, done: int, total: int | None) -> None:
        pass
