"""Small shared helpers with no heavy imports."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def _current_umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(file)`` on a temporary file in ``path``'s folder, then rename it to ``path``.

    A reader sees the old file or the whole new one, never a half-written one. The file gets the
    mode ``open()`` would give it (0666 less the umask: 0644 usually), not mkstemp's private 0600,
    so the group can read a run's outputs on a shared cluster.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_current_umask())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def read_json(path: str | Path) -> object:
    """Parse a JSON file; a missing or malformed file is a one-line :class:`DatasetError`."""
    from utal_lightning.errors import DatasetError

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text ({e.reason})") from None


def atomic_write_json(path: str | Path, obj: object, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


SHIPPED_CONFIGS = Path(__file__).resolve().parent / "configs"


def shipped_config(name: str) -> Path | None:
    """The config installed with the package under ``name`` (``thumos_copl``, ``lite/thumos_copl``, with or
    without ``.yaml``), or None."""
    relative = Path(name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
    if relative.is_absolute() or ".." in relative.parts:
        return None
    path = SHIPPED_CONFIGS / relative
    return path if path.is_file() else None


def read_configs(names: list[str]) -> dict:
    """``utal fit`` config files (paths, or names of shipped configs: an existing path wins) merged in order, later
    keys over earlier ones, mappings merged key by key (as ``--config A --config B``). A missing or unreadable
    file is a one-line :class:`DatasetError`."""
    import yaml

    from utal_lightning.errors import DatasetError

    def merge(base: dict, top: dict) -> dict:
        out = dict(base)
        for key, value in top.items():
            out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out

    merged: dict = {}
    for name in names:
        path = Path(name) if Path(name).exists() else shipped_config(name)
        if path is None:
            raise DatasetError(f"{name}: config file not found (nor a shipped config of that name)")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise DatasetError(f"{path}: cannot read the config ({type(e).__name__}: {e})") from None
        if not isinstance(loaded, dict):
            raise DatasetError(f"{path}: a config must be a mapping, got {type(loaded).__name__}")
        merged = merge(merged, loaded)
    return merged
