"""Files shipped inside the package: guest templates, the kernel config base, C sources.

They are package data (``pyproject.toml`` lists them), found through
``importlib.resources`` so a wheel installed anywhere finds them as well as an editable
checkout does. The repository's top-level ``initramfs/`` and ``kernels/`` are links to the
folders here.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ktstr.errors import InfraError


def package_path(package: str, *parts: str) -> Path:
    """The file or folder ``parts`` shipped with ``package``, as a filesystem path.

    pip unpacks a wheel into files (and an editable install points at the checkout), so
    the resource is a real path, which gcc and the jinja2 loader need.
    """
    ref = resources.files(package)
    for part in parts:
        ref = ref / part
    if not isinstance(ref, Path):
        raise InfraError(f"{package} is not installed as plain files ({ref!r}); "
                         "reinstall ktstr with pip")
    return ref
