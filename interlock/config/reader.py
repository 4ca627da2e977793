"""Reading TOML tables with errors that name the file and the key path.

Every config model is built through a :class:`Table`, which knows where it
came from (``profiles/mdb24.toml`` and ``nets.VBUS``), converts values with
their units, and refuses keys nobody asked for: a misspelt limit must not be
silently ignored.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from interlock.errors import ConfigError
from interlock.units import Dimension, QuantityError, parse_quantity


def display_path(path: Path) -> str:
    """The path as people should read it: relative to the working directory when inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if relative.startswith("..") else relative


def read_toml(path: Path) -> tuple[dict[str, Any], bytes]:
    """Parse a TOML file; return its data and its raw bytes (for hashing)."""
    shown = display_path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(shown, "", "file not found") from exc
    except OSError as exc:
        raise ConfigError(shown, "", f"cannot read: {exc.strerror}") from exc
    try:
        return tomllib.loads(raw.decode("utf-8")), raw
    except UnicodeDecodeError as exc:
        raise ConfigError(shown, "", "not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(shown, "", f"invalid TOML: {exc}") from exc


def _describe(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


class Table:
    """One TOML table being read; tracks which keys were used."""

    def __init__(self, data: dict[str, Any], file: str, path: str = "") -> None:
        self.data = data
        self.file = file
        self.path = path
        self._used: set[str] = set()

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.file, self.key_path(key) if key else self.path, problem)

    def has(self, key: str) -> bool:
        return key in self.data

    def _take(self, key: str, required: bool) -> Any:
        self._used.add(key)
        if key not in self.data:
            if required:
                raise self.error(key, "missing")
            return None
        return self.data[key]

    def string(
        self, key: str, *, required: bool = True, choices: tuple[str, ...] = ()
    ) -> str | None:
        value = self._take(key, required)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"expected a non-empty string, got {_describe(value)}")
        if choices and value not in choices:
            raise self.error(key, f"expected one of {', '.join(choices)}, got {_describe(value)}")
        return value

    def integer(self, key: str, *, required: bool = True, minimum: int | None = None) -> int | None:
        value = self._take(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {_describe(value)}")
        if minimum is not None and value < minimum:
            raise self.error(key, f"expected an integer >= {minimum}, got {value}")
        return value

    def quantity(
        self, key: str, dimension: Dimension, *, required: bool = True, non_negative: bool = True
    ) -> float | None:
        value = self._take(key, required)
        if value is None:
            return None
        try:
            number = parse_quantity(value, dimension)
        except QuantityError as exc:
            raise self.error(key, str(exc)) from None
        if non_negative and number < 0:
            raise self.error(
                key, f"expected a non-negative {dimension.name}, got {_describe(value)}"
            )
        return number

    def string_list(self, key: str, *, required: bool = True) -> list[str] | None:
        value = self._take(key, required)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, f"expected an array of strings, got {_describe(value)}")
        return list(value)

    def table(self, key: str, *, required: bool = True) -> Table | None:
        value = self._take(key, required)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.error(key, f"expected a table, got {_describe(value)}")
        return Table(value, self.file, self.key_path(key))

    def tables(self, key: str, *, required: bool = True) -> dict[str, Table]:
        """A table of tables (``[nets.VBUS]``, ``[nets.VLOGIC]``), keyed by name."""
        outer = self.table(key, required=required)
        if outer is None:
            return {}
        result = {}
        for name in outer.data:
            result[name] = outer.table(name)
        outer.finish()
        return result

    def array_of_tables(self, key: str) -> list[Table]:
        value = self._take(key, False)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(key, f"expected an array of tables, got {_describe(value)}")
        return [Table(v, self.file, f"{self.key_path(key)}[{i}]") for i, v in enumerate(value)]

    def finish(self) -> None:
        """Refuse any key that was not read: a typo must not pass unnoticed."""
        for key in self.data:
            if key not in self._used:
                raise self.error(key, "unknown key")
