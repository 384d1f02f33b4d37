"""One error hierarchy for ktstr.

``UserError`` means the input was wrong (a bad declaration, an unknown name, a bad
option) and the message says how to fix it. ``InfraError`` means the machinery failed
(QEMU died, a download broke, the archive is unreachable) and it carries its cause.
A scheduler that fails a check is neither: that is a *verdict*, not an exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class KtstrError(Exception):
    """Base of every error ktstr raises on purpose."""

    #: process exit code the CLI uses for this kind of error
    exit_code: int = 1


class UserError(KtstrError):
    """Bad input: a declaration, an option, a name. The message names the fix."""

    exit_code = 2


class InfraError(KtstrError):
    """The harness or the host failed (QEMU, kernel fetch, disk, network)."""

    exit_code = 3


class DeclarationError(UserError):
    """A declaration failed validation; one readable line per problem."""

    def __init__(self, declaration: str, problems: Sequence[str]) -> None:
        self.declaration = declaration
        self.problems = list(problems)
        super().__init__("\n".join(f"{declaration}: {p}" for p in self.problems))


class UnknownNameError(UserError):
    """A name that is not registered; lists the known ones."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = sorted(known)
        choices = ", ".join(self.known) if self.known else "(none registered)"
        super().__init__(f"unknown {kind} {name!r}; known {kind}s: {choices}")


class DuplicateNameError(UserError):
    """A second declaration under a name that is already registered."""

    def __init__(self, kind: str, name: str, *, first: str = "", second: str = "") -> None:
        self.kind = kind
        self.name = name
        self.first = first
        self.second = second
        where = ""
        if first or second:
            where = f" (first in {first or '?'}, again in {second or '?'})"
        super().__init__(
            f"{kind} {name!r} is declared twice{where}; names must be unique: rename one"
        )
