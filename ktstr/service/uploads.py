"""Client side of uploads: find the local files a plan refers to and rewrite them to
``upload:NAME`` references (``ktstr sched plan-exec``)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from ktstr.errors import UserError
from ktstr.service.storage import UPLOAD_PREFIX


def _looks_local(value: str) -> bool:
    return "/" in value or value.startswith((".", "~"))


def _safe_name(path: Path, taken: dict[str, Path]) -> str:
    base = re.sub(r"[^A-Za-z0-9._+-]", "_", path.name).lstrip(".") or "file"
    name, n = base, 2
    while name in taken and taken[name] != path:
        name = f"{base}-{n}"
        n += 1
    return name


def local_uploads(document: Any, base: Path) -> tuple[Any, dict[str, Path]]:
    """(the plan with local files replaced by ``upload:NAME``, NAME -> local path).

    Kernel and scheduler values that name an existing local file (a path with ``/`` or
    starting with ``.``/``~``; relative to ``base``, the plan's directory) are uploaded;
    every ``files`` entry must be a local file. Other values are left alone."""
    if not isinstance(document, dict):
        return document, {}
    doc = copy.deepcopy(document)
    files: dict[str, Path] = {}

    def resolve(value: str) -> Path:
        p = Path(value).expanduser()
        return (p if p.is_absolute() else base / p).resolve()

    def take(value: str) -> str:
        path = resolve(value)
        for name, known in files.items():
            if known == path:
                return UPLOAD_PREFIX + name
        name = _safe_name(path, files)
        files[name] = path
        return UPLOAD_PREFIX + name

    for run in doc.get("runs") or []:
        if not isinstance(run, dict):
            continue
        for key in ("kernels", "schedulers"):
            values = run.get(key)
            if not isinstance(values, list):
                continue
            run[key] = [take(v) if isinstance(v, str) and _looks_local(v)
                        and resolve(v).is_file() else v for v in values]
    extra = doc.get("files")
    if isinstance(extra, list):
        out = []
        for i, v in enumerate(extra):
            if isinstance(v, str) and not v.startswith(UPLOAD_PREFIX):
                if not resolve(v).is_file():
                    raise UserError(f"files[{i}]: {v!r} is not a local file")
                out.append(take(v))
            else:
                out.append(v)
        doc["files"] = out
    return doc, files
