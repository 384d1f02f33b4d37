"""``ktstr preference set|get``: small named settings kept in the config directory.

Stored as YAML in ``$XDG_CONFIG_HOME/ktstr/preferences.yaml`` (mode 0600: it may hold
a scheduler token).
"""

from __future__ import annotations

import os
from pathlib import Path

import click
import yaml

from ktstr.errors import UserError
from ktstr.paths import config_dir

#: category -> names that may be set
KNOWN: dict[str, tuple[str, ...]] = {"sched": ("url", "token")}


def preferences_file() -> Path:
    return config_dir() / "preferences.yaml"


def _check(category: str, name: str) -> None:
    if category not in KNOWN:
        raise UserError(f"unknown preference category {category!r}; known: "
                        + ", ".join(sorted(KNOWN)))
    if name not in KNOWN[category]:
        raise UserError(f"unknown preference {category}.{name}; known names in "
                        f"{category!r}: " + ", ".join(KNOWN[category]))


def _load() -> dict[str, dict[str, str]]:
    path = preferences_file()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return {}
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read preferences {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of category -> name -> value")
    return {str(k): {str(n): str(v) for n, v in (d or {}).items()} for k, d in data.items()}


def get_preference(category: str, name: str) -> str | None:
    _check(category, name)
    return _load().get(category, {}).get(name)


def set_preference(category: str, name: str, value: str) -> Path:
    _check(category, name)
    data = _load()
    data.setdefault(category, {})[name] = value
    path = preferences_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(data, f, sort_keys=True)
    os.replace(tmp, path)
    return path


_category = click.option("--category", required=True, help="Preference category (sched).")
_name = click.option("--name", required=True, help="Preference name (sched: url, token).")


@click.group("preference")
def preference_group() -> None:
    """Saved settings, e.g. the scheduler URL and token used by `ktstr sched`."""


@preference_group.command("set")
@_category
@_name
@click.argument("value")
def pref_set(category: str, name: str, value: str) -> None:
    """Save VALUE as CATEGORY.NAME."""
    path = set_preference(category, name, value)
    click.echo(f"{category}.{name} saved in {path}")


@preference_group.command("get")
@_category
@_name
def pref_get(category: str, name: str) -> None:
    """Print the saved value of CATEGORY.NAME."""
    value = get_preference(category, name)
    if value is None:
        raise UserError(f"{category}.{name} is not set; set it with `ktstr preference set "
                        f"--category {category} --name {name} VALUE`")
    click.echo(value)
