"""Reading TOML tables with errors that name the file and the key path.

Every config model is built through a :class:`Table`, which knows where it
came from (``profiles/mdb24.toml`` and ``nets.VBUS``), converts values with
their units, checks them against their bounds (:mod:`.bounds`), and refuses
keys nobody asked for: a misspelt limit must not be silently ignored.

A file is read only if it is a regular file of at most :data:`MAX_FILE_BYTES`
(symlinks resolved first): a FIFO, a device (``/dev/zero``) or a directory is
refused before it is read, and nothing is read past the bound. Whatever goes
wrong, the error is a :class:`~interlock.errors.ConfigError` naming the file.
"""

from __future__ import annotations

import difflib
import os
import stat
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interlock.config.bounds import (
    MAX_ITEMS,
    MAX_PATH_BYTES,
    MAX_TEXT,
    NAME,
    NAME_RULE,
    Range,
)
from interlock.errors import ConfigError
from interlock.units import Dimension, QuantityError, parse_quantity

#: The largest configuration file read (the shipped ones are a few KiB).
MAX_FILE_BYTES = 1 << 20
# How alike a present key must be to a missing one to be named as its misspelling
# (difflib's ratio: monitor_perod 0.96, max_slwe 0.88; min_voltage for max_voltage 0.82).
MISSPELT = 0.85
# How much of a value or key an error message shows.
_SHOWN = 60

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def shown_text(text: str, limit: int = _SHOWN) -> str:
    """``text`` safe to print in one line of an error: control characters escaped, cut."""
    if text.isprintable() and len(text) <= limit:
        return text
    cut = text[:limit]
    escaped = cut.encode("unicode_escape").decode("ascii") if not cut.isprintable() else cut
    return escaped + ("..." if len(text) > limit else "")


def display_path(path: Path) -> str:
    """The path as people should read it: relative to the working directory when inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        relative = ".."
    shown = str(path) if relative.startswith("..") else relative
    return shown_text(shown, MAX_PATH_BYTES)


def resolve_file(path: str | Path, file: str = "", key: str = "") -> Path:
    """``path`` made absolute, symlinks resolved; ConfigError for a path no file can have.

    ``file`` and ``key`` say where the path was written, when it was (else the
    error names the path itself).
    """
    where = file or shown_text(str(path), MAX_PATH_BYTES)
    text = str(path)
    if "\0" in text:
        raise ConfigError(where, key, "a path cannot contain a NUL character")
    if len(os.fsencode(text)) > MAX_PATH_BYTES:
        raise ConfigError(where, key, f"a path of more than {MAX_PATH_BYTES} bytes")
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, an unreadable link
        raise ConfigError(where, key, f"cannot resolve the path: {exc}") from None


def read_file(path: Path) -> bytes:
    """The bytes of a regular file of at most :data:`MAX_FILE_BYTES`, or ConfigError."""
    shown = display_path(path)
    try:
        _check_regular(os.stat(path), shown)  # before opening: a FIFO's open would block
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        raise ConfigError(shown, "", "file not found") from exc
    except OSError as exc:
        raise ConfigError(shown, "", f"cannot read: {exc.strerror}") from exc
    except ValueError as exc:  # a NUL in the path
        raise ConfigError(shown, "", f"cannot read: {exc}") from exc
    try:
        _check_regular(os.fstat(fd), shown)  # what was opened, if it changed since
    except OSError as exc:
        os.close(fd)
        raise ConfigError(shown, "", f"cannot read: {exc.strerror}") from exc
    except BaseException:
        os.close(fd)
        raise
    try:
        with os.fdopen(fd, "rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(shown, "", f"cannot read: {exc.strerror}") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(shown, "", f"larger than {MAX_FILE_BYTES} bytes")
    return raw


def _check_regular(status: os.stat_result, shown: str) -> None:
    for test, kind in _KINDS:
        if test(status.st_mode):
            raise ConfigError(shown, "", f"not a regular file ({kind})")
    if not stat.S_ISREG(status.st_mode):
        raise ConfigError(shown, "", "not a regular file")
    if status.st_size > MAX_FILE_BYTES:
        raise ConfigError(shown, "", f"{status.st_size} bytes: larger than {MAX_FILE_BYTES} bytes")


def read_toml(path: Path) -> tuple[dict[str, Any], bytes]:
    """Parse a TOML file; return its data and its raw bytes (for hashing)."""
    shown = display_path(path)
    raw = read_file(path)
    try:
        return tomllib.loads(raw.decode("utf-8")), raw
    except UnicodeDecodeError as exc:
        raise ConfigError(shown, "", "not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(shown, "", f"invalid TOML: {exc}") from exc
    except RecursionError:
        raise ConfigError(shown, "", "invalid TOML: arrays or tables nested too deeply") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise ConfigError(shown, "", f"invalid TOML: {exc}") from exc
    except MemoryError:
        raise ConfigError(shown, "", "invalid TOML: too large to parse") from None


def _describe(value: object) -> str:
    if isinstance(value, str):
        return f'"{shown_text(value)}"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return shown_text(repr(value))


def _other_key(key: str, found: str) -> bool:
    """``found`` is a key of its own, not ``key`` misspelt, as the keys that differ by
    a whole word are: min_ and max_ of a window, a _dc_ rating, a plural."""
    words, other = key.split("_"), found.split("_")
    swapped = [{"min": "max", "max": "min"}.get(w, w) for w in other]
    return (
        swapped == words
        or ([w for w in words if w != "dc"] == [w for w in other if w != "dc"] and words != other)
        or found in (key + "s", key[:-1])
    )


class Table:
    """One TOML table being read; tracks which keys were used."""

    def __init__(self, data: dict[str, Any], file: str, path: str = "") -> None:
        self.data = data
        self.file = file
        self.path = path
        self._used: set[str] = set()

    def key_path(self, key: str) -> str:
        key = shown_text(key)
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.file, self.key_path(key) if key else self.path, problem)

    def has(self, key: str) -> bool:
        return key in self.data

    def _take(self, key: str, required: bool) -> Any:
        self._used.add(key)
        if key not in self.data:
            if required:
                raise self.error(key, "missing" + self._misspelt(key))
            return None
        return self.data[key]

    def _misspelt(self, key: str) -> str:
        """A key of the table that looks like ``key`` misspelt, said beside "missing":
        the typo is what the user has to find. Close enough that min_ and max_ of the
        same quantity are never taken for each other."""
        return self.misspelling(key, lambda found: f' (is "{found}" a misspelling of it?)')

    def misspelling(self, key: str, said: Callable[[str], str]) -> str:
        """``said(k)`` for a key ``k`` of the table, not read, that looks like ``key``
        misspelt; "" if there is none."""
        others = [
            k
            for k in self.data
            if isinstance(k, str) and k not in self._used and not _other_key(key, k)
        ]
        close = difflib.get_close_matches(key, others, n=1, cutoff=MISSPELT)
        return said(shown_text(close[0])) if close else ""

    def string(
        self,
        key: str,
        *,
        required: bool = True,
        choices: tuple[str, ...] = (),
        max_length: int = MAX_TEXT,
    ) -> str | None:
        """Printable text (no control characters, one line) of at most ``max_length``."""
        value = self._take(key, required)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"expected a non-empty string, got {_describe(value)}")
        if choices and value not in choices:
            raise self.error(key, f"expected one of {', '.join(choices)}, got {_describe(value)}")
        if len(value) > max_length:
            raise self.error(key, f"expected at most {max_length} characters, got {len(value)}")
        if not value.isprintable():
            raise self.error(key, f"expected printable text on one line, got {_describe(value)}")
        return value

    def name(self, key: str, *, required: bool = True) -> str | None:
        """A name of an instrument, relay or net (:data:`~.bounds.NAME`)."""
        value = self.string(key, required=required)
        if value is not None and not NAME.fullmatch(value):
            raise self.error(key, f"expected a name of {NAME_RULE}, got {_describe(value)}")
        return value

    def integer(
        self,
        key: str,
        *,
        required: bool = True,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        value = self._take(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {_describe(value)}")
        if minimum is not None and value < minimum:
            raise self.error(key, f"expected an integer >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise self.error(key, f"expected an integer <= {maximum}, got {value}")
        return value

    def quantity(
        self, key: str, dimension: Dimension, *, required: bool = True, non_negative: bool = True
    ) -> float | None:
        value = self._take(key, required)
        if value is None:
            return None
        if isinstance(value, str) and not value.isprintable():
            raise self.error(key, f"expected a {dimension.name}, got {_describe(value)}")
        try:
            number = parse_quantity(value, dimension)
        except QuantityError as exc:
            raise self.error(key, str(exc)) from None
        if non_negative and number < 0:
            raise self.error(
                key, f"expected a non-negative {dimension.name}, got {_describe(value)}"
            )
        return number

    def bounded(self, key: str, bound: Range, *, required: bool = True) -> float | None:
        """A quantity of ``bound``'s dimension inside ``bound``."""
        number = self.quantity(key, bound.dimension, required=required, non_negative=False)
        if number is not None and not bound.admits(number):
            why = f"; {bound.why}" if bound.why else ""
            raise self.error(
                key,
                f"expected {bound.expected()}, got {_describe(self.data[key])}{why}",
            )
        return number

    def file_path(self, key: str, base: Path, *, required: bool = True) -> Path | None:
        """A file's path, relative to ``base``, resolved (its file is not read here)."""
        value = self.string(key, required=required, max_length=MAX_PATH_BYTES)
        if value is None:
            return None
        return resolve_file(base / value, self.file, self.key_path(key))

    def string_list(
        self, key: str, *, required: bool = True, max_items: int = MAX_ITEMS
    ) -> list[str] | None:
        value = self._take(key, required)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, f"expected an array of strings, got {_describe(value)}")
        if len(value) > max_items:
            raise self.error(key, f"expected at most {max_items} entries, got {len(value)}")
        for item in value:
            if len(item) > MAX_TEXT or not item.isprintable():
                raise self.error(key, f"expected printable names, got {_describe(item)}")
        return list(value)

    def table(self, key: str, *, required: bool = True) -> Table | None:
        value = self._take(key, required)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.error(key, f"expected a table, got {_describe(value)}")
        return Table(value, self.file, self.key_path(key))

    def tables(self, key: str, *, required: bool = True) -> dict[str, Table]:
        """A table of named tables (``[nets.VBUS]``, ``[nets.VLOGIC]``), keyed by name.

        The names are names of things (:data:`~.bounds.NAME`): nets, relays, instruments.
        """
        outer = self.table(key, required=required)
        if outer is None:
            return {}
        if len(outer.data) > MAX_ITEMS:
            raise self.error(key, f"expected at most {MAX_ITEMS} entries, got {len(outer.data)}")
        result = {}
        for name in outer.data:
            if not NAME.fullmatch(name):
                raise outer.error(name, f"expected a name of {NAME_RULE}")
            result[name] = outer.table(name)
        outer.finish()
        return result

    def array_of_tables(self, key: str, *, max_items: int = MAX_ITEMS) -> list[Table]:
        value = self._take(key, False)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(key, f"expected an array of tables, got {_describe(value)}")
        if len(value) > max_items:
            raise self.error(key, f"expected at most {max_items} tables, got {len(value)}")
        return [Table(v, self.file, f"{self.key_path(key)}[{i}]") for i, v in enumerate(value)]

    def finish(self) -> None:
        """Refuse any key that was not read: a typo must not pass unnoticed."""
        for key in self.data:
            if key not in self._used:
                raise self.error(key, "unknown key")
