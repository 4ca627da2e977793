"""Instruments as data: one file per family (``<family>.toml``) beside this module.

A dialect file says how a family is reached, how each model says who it is,
what each model can deliver, what the family can do (its capabilities) and
the exact lines of each operation. The drivers speak any dialect of their
kind from it; the configuration checks a bench against it; the simulator's
twins answer in it. Quirks that data cannot say live in a hook module named
by the file (``hook = "korad"`` -> ``korad.py`` beside it).

Adding a model is adding rows to its family's file; adding a family is a new
file (see the README's "Adding an instrument").
"""

from __future__ import annotations

import functools
import importlib
import re
from pathlib import Path
from types import ModuleType

from interlock.dialects.drivers import DRIVER_GROUP, registered_drivers
from interlock.dialects.loader import load_dialect
from interlock.dialects.model import (
    KINDS,
    REQUIRABLE,
    Capabilities,
    Dialect,
    MeterModel,
    Model,
    SupplyChannel,
    SupplyModel,
    SupplyRange,
    SwitchModel,
)
from interlock.errors import ConfigError

__all__ = [
    "DRIVER_GROUP",
    "KINDS",
    "REQUIRABLE",
    "Capabilities",
    "Dialect",
    "MeterModel",
    "Model",
    "SupplyChannel",
    "SupplyModel",
    "SupplyRange",
    "SwitchModel",
    "dialect_of",
    "dialects",
    "hook_of",
    "match_identity",
    "models",
    "registered_drivers",
]

HERE = Path(__file__).resolve().parent


@functools.cache
def dialects() -> dict[str, Dialect]:
    """Every dialect shipped, by name; each file read and checked once per process."""
    found = {}
    for path in sorted(HERE.glob("*.toml")):
        dialect = load_dialect(path)
        found[dialect.name] = dialect
    return found


@functools.cache
def _models() -> dict[str, tuple[Dialect, Model]]:
    by_model: dict[str, tuple[Dialect, Model]] = {}
    for dialect in dialects().values():
        for name, model in dialect.models.items():
            if name in by_model:  # a model name picks its dialect: it must be unique
                other = by_model[name][0].path
                raise ConfigError(dialect.path, f"models.{name}", f"also in {other}")
            by_model[name] = (dialect, model)
    return by_model


def models(kind: str) -> dict[str, Model]:
    """Every model of one kind (``supply``, ``meter``, ``switch``), by model name."""
    return {name: model for name, (d, model) in _models().items() if d.kind == kind}


def dialect_of(model: str) -> Dialect | None:
    """The dialect a model (as its identity names it) speaks; None if none does."""
    found = _models().get(model)
    return found[0] if found is not None else None


def hook_of(dialect: Dialect) -> ModuleType | None:
    """The dialect's quirks module, if it has one."""
    if dialect.hook is None:
        return None
    return importlib.import_module(f"{__name__}.{dialect.hook}")


def match_identity(dialect: Dialect, reply: str) -> re.Match[str] | None:
    """The dialect's identity pattern matched against a reply (its stray bytes dropped)."""
    if dialect.identity is None:
        return None
    text = reply.rstrip(dialect.identity.strip) if dialect.identity.strip else reply
    return dialect.identity.pattern.fullmatch(text.strip())
