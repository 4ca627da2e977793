"""Drivers come from the registry, say what they drive, and implement its protocol."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from interlock.dialects import dialects
from interlock.drivers.registry import GROUP, DriverSpec, build, driver_class, driver_names
from interlock.errors import ConfigError
from interlock.protocols import PROTOCOLS, Meter, PowerSupply, RelayBank, SwitchUnit


def test_the_built_in_drivers_are_registered_as_entry_points():
    names = {ep.name for ep in entry_points(group=GROUP)}
    assert {"supply", "meter", "relay-board", "scpi-psu", "scpi-dmm"} <= names
    assert driver_names() == frozenset(names)


def test_every_dialect_names_a_registered_driver_of_its_kind():
    for dialect in dialects().values():
        cls = driver_class(dialect.driver)
        assert cls.kind == dialect.kind, dialect.name
        assert PROTOCOLS[cls.kind] in cls.implements.__mro__


@pytest.mark.parametrize("name", sorted(dialects()))
def test_drivers_built_from_the_registry_implement_their_protocols(tmp_path, name):
    from interlock.journal import Journal

    dialect = dialects()[name]
    with Journal(tmp_path / "j.sqlite", bench="b") as journal:
        where = "/dev/null" if dialect.link.kind == "serial" else "TCPIP::127.0.0.1::1::SOCKET"
        spec = DriverSpec("x", dialect, where, journal, 0.1)
        instrument = build(dialect.driver, spec, file="bench.toml", key="instruments.x")
        protocol = {"supply": PowerSupply, "meter": Meter, "switch": SwitchUnit}[dialect.kind]
        assert isinstance(instrument, protocol)
        if dialect.kind != "supply":
            assert not isinstance(instrument, PowerSupply)
        if dialect.name == "interlock-rb8":
            assert isinstance(instrument, RelayBank)


def test_a_driver_of_another_kind_is_refused_naming_the_key(tmp_path):
    from interlock.journal import Journal

    meter = next(d for d in dialects().values() if d.kind == "meter")
    with Journal(tmp_path / "j.sqlite", bench="b") as journal:
        spec = DriverSpec("x", meter, "TCPIP::127.0.0.1::1::SOCKET", journal, 0.1)
        with pytest.raises(ConfigError, match=r"instruments\.x\.driver: .*drives a supply"):
            build("supply", spec, file="bench.toml", key="instruments.x.driver")
        with pytest.raises(ConfigError, match='no driver "nope" registered'):
            build("nope", spec, file="bench.toml", key="instruments.x.driver")
