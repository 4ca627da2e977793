"""Parsing what people type for times and sizes: ``--since 10m``, ``--max-bytes 50M``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d|w)")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZE = re.compile(r"(\d+)\s*([kmg]i?b?|b)?", re.IGNORECASE)
_BYTES = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``10m``, ``1h30m``, ``7d``, ``2w``."""
    compact = text.strip().lower().replace(" ", "")
    matches = list(_DURATION.finditer(compact))
    if not compact or "".join(m.group(0) for m in matches) != compact:
        raise ValueError(f"not a duration: {text!r} (expected e.g. 30s, 10m, 2h, 7d, 1h30m)")
    return timedelta(seconds=sum(float(m.group(1)) * _SECONDS[m.group(2)] for m in matches))


def parse_since(text: str, now: datetime) -> datetime:
    """An ISO 8601 time (naive means UTC, as the journal is) or a duration before ``now``."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (expected ISO 8601 like 2026-03-14T09:30:00Z, or 10m, 2h)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_size(text: str) -> int:
    """Bytes: ``500000``, ``500k``, ``50M``, ``2G`` (powers of 1000; ``KiB`` etc. of 1024)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a size: {text!r} (expected e.g. 500000, 500k, 50M, 2G)")
    number, suffix = int(match.group(1)), (match.group(2) or "").lower()
    if "i" in suffix:
        return number * 1024 ** ("kmg".index(suffix[0]) + 1)
    return number * _BYTES[suffix[:1]]
