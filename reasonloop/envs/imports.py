"""User code named in a config: `package.module:name` or `path/to/file.py:name`, imported
with every failure as one line (env plugins, answer checks)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from hashlib import sha1
from pathlib import Path

from reasonloop.errors import ConfigError


def plugins_import(ref: str, what: str):
    """The object `ref` names. A dotted module is searched on sys.path and in the working
    directory (as `python -m` does); a `.py` path is loaded from that file."""
    module, sep, attr = ref.rpartition(":")
    if not sep or not module or not attr:
        raise ConfigError(f"{what} {ref!r}: expected package.module:name or file.py:name")
    mod = import_module(module, what, ref)
    if not hasattr(mod, attr):
        raise ConfigError(f"{what} {ref!r}: module {module!r} has no {attr!r}")
    return getattr(mod, attr)


def import_module(module: str, what: str, ref: str):
    try:
        if module.endswith(".py"):
            return _from_file(Path(module).resolve(), what, ref)
        if str(Path.cwd()) not in sys.path and "" not in sys.path:
            sys.path.append(str(Path.cwd()))
        return importlib.import_module(module)
    except ConfigError:
        raise
    except Exception as e:       # noqa: BLE001 — any import failure of user code, one line
        raise ConfigError(f"{what} {ref!r} does not import: {type(e).__name__}: "
                          f"{first_line(e)}") from None


def _from_file(path: Path, what: str, ref: str):
    if not path.is_file():
        raise ConfigError(f"{what} {ref!r}: no such file {path}")
    key = f"reasonloop_plugin_{path.stem}_{sha1(str(path).encode()).hexdigest()[:8]}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[key] = mod          # before running it: dataclasses and pickling look it up
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(key, None)
        raise
    return mod


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0]
