"""One jinja2 environment over the ``initramfs/`` templates shipped in the package.

Strict: an undefined variable is an error, not an empty string. No autoescape (these are
shell scripts, not HTML); trailing newlines are kept. The ``shquote`` filter quotes a
value for a POSIX shell: ``{{ path | shquote }}`` → ``'/a b/c'``; a list becomes its
quoted items joined by spaces.

The folder is ``$KTSTR_INITRAMFS_DIR`` when set, else the package's ``ktstr/initramfs/``
(the repository's top-level ``initramfs/`` links to it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ktstr.errors import InfraError, UserError
from ktstr.image.cache import write_atomic
from ktstr.paths import cache_root
from ktstr.resources import package_path

if TYPE_CHECKING:
    import jinja2

log = logging.getLogger(__name__)

ENV_VAR = "KTSTR_INITRAMFS_DIR"


def templates_dir() -> Path:
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return package_path("ktstr", "initramfs")


def shquote(value: object) -> str:
    """POSIX single-quote quoting; lists and tuples become space-separated quoted words."""
    if isinstance(value, list | tuple):
        return " ".join(shquote(item) for item in value)
    if value is None or isinstance(value, dict | set):
        raise UserError(f"shquote takes a string, number, path or list, not {value!r}")
    text = str(value)
    return "'" + text.replace("'", "'\\''") + "'"


@lru_cache(maxsize=4)
def _environment(directory: str) -> jinja2.Environment:
    import jinja2  # a warm run renders nothing: jinja2 stays off its import path

    if not Path(directory).is_dir():
        raise InfraError(
            f"initramfs template folder {directory} does not exist; "
            f"set {ENV_VAR} to a folder of initramfs templates, or reinstall ktstr"
        )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        auto_reload=False,
    )
    env.filters["shquote"] = shquote
    return env


def environment() -> jinja2.Environment:
    """The cached environment for the current template folder."""
    return _environment(str(templates_dir()))


def template_names() -> list[str]:
    return sorted(environment().list_templates())


def render(template_name: str, /, **context: Any) -> str:
    """Render ``template_name`` (a path inside the folder) with ``context``.

    The text is remembered under ``<cache>/rendered/``, keyed by the name, the context
    and the bytes of every file in the template folder (a template may include others):
    every run renders the init, and importing jinja2 and compiling the template cost
    each ktstr process ~25 ms."""
    key = _render_key(template_name, context)
    memo = cache_root() / "rendered" / f"{key}.txt" if key else None
    if memo is not None:
        try:
            return memo.read_text(encoding="utf-8")
        except OSError:
            pass
    text = _render(template_name, context)
    if memo is not None:
        try:
            write_atomic(memo, text.encode("utf-8"), durable=False)
        except OSError as exc:
            log.debug("rendered template not remembered: %s", exc)
    return text


def _render_key(template_name: str, context: dict[str, Any]) -> str | None:
    """The memo key of one render, or None when the context is not plain data or the
    folder cannot be read (then it is rendered each time)."""
    try:
        ctx = json.dumps(context, sort_keys=True)
        folder = templates_dir()
        h = hashlib.sha256(f"{template_name}\0{ctx}\0".encode())
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            h.update(f"{path.relative_to(folder)}\0".encode())
            h.update(path.read_bytes())
    except (TypeError, ValueError, OSError):
        return None
    return h.hexdigest()


def _render(template_name: str, context: dict[str, Any]) -> str:
    import jinja2

    env = environment()
    try:
        template = env.get_template(template_name)
    except jinja2.TemplateNotFound as exc:
        raise UserError(
            f"no initramfs template {template_name!r} in {templates_dir()}; "
            f"known templates: {', '.join(_templates_only(env.list_templates()))}"
        ) from exc
    except jinja2.TemplateSyntaxError as exc:
        raise UserError(
            f"initramfs template {exc.filename or template_name}:{exc.lineno}: {exc.message}"
        ) from exc
    try:
        return template.render(**context)
    except jinja2.UndefinedError as exc:
        raise UserError(
            f"rendering initramfs template {template_name!r}: {exc.message}; "
            f"pass it to render() (given: {', '.join(sorted(context)) or 'nothing'})"
        ) from exc


def _templates_only(names: Iterable[str]) -> list[str]:
    return sorted(n for n in names if n.endswith(".j2"))
