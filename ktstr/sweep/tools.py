"""Host-built guest helpers for the verifier sweep, cached by content.

``ktstr-proginfo`` (``proginfo.c``) prints ``bpf_prog_info.verified_insns`` for every
loaded program; it is compiled once, statically, with the host's gcc, like the scenario worker.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

PROGINFO = "ktstr-proginfo"


def proginfo_binary() -> Path:
    """The compiled helper, built on first use (``ktstr.guest.native.static_binary``)."""
    from ktstr.guest.native import static_binary

    source = resources.files("ktstr.sweep").joinpath("proginfo.c")
    with resources.as_file(source) as path:
        return static_binary(Path(path), PROGINFO)
