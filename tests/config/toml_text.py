"""TOML text from Python data, for the fuzz tests (tomllib reads TOML but does not write it).

Every table is written inline (``nets = { VBUS = { ... } }``), which TOML
reads as the same data as ``[nets.VBUS]`` headers: what the loaders see is
the data, not how it was spelt.
"""

from __future__ import annotations

import datetime
import json
import math


def toml_string(text: str) -> str:
    # JSON's escapes are TOML's; DEL and non-characters JSON leaves raw, TOML does not.
    quoted = json.dumps(text, ensure_ascii=False)
    return "".join(
        f"\\u{ord(c):04x}" if c == "\x7f" or 0x80 <= ord(c) <= 0x9F else c for c in quoted
    )


def toml_key(key: str) -> str:
    bare = key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)
    return key if bare else toml_string(key)


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {value!r}")


def dumps(data: dict[str, object]) -> str:
    return "".join(f"{toml_key(key)} = {toml_value(value)}\n" for key, value in data.items())
