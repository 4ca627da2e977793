"""The dialect files load, say what they need to, and the README shows them."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.dialects import dialects
from interlock.dialects.loader import load_dialect
from interlock.dialects.table import END, START, supported_models_table
from interlock.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_lists_the_supported_models_from_the_dialect_files():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = readme.split(START)[1].split(END)[0].strip()
    assert shown == supported_models_table(), (
        "the README's table of supported models is stale: paste the output of "
        "`python -m interlock.dialects.table` between its markers"
    )


def test_a_family_without_lan_says_how_a_real_unit_is_reached():
    """No unit of the Keithley 2200 series has LAN: its rows name USB-TMC and GPIB, and the
    socket only as the twin's, so no one goes looking for a port the unit does not have."""
    rows = [r for r in supported_models_table().splitlines() if "`keithley_2230.toml`" in r]
    assert len(rows) == len(dialects()["keithley-2230"].models)
    for row in rows:
        assert "| VISA over USB-TMC (GPIB too on the G models) (twin: visa-socket :5025) |" in row


def test_every_model_with_an_unconfirmed_fact_says_so_in_the_table():
    table = supported_models_table()
    for dialect in dialects().values():
        for model in dialect.models.values():
            for fact in (*dialect.unconfirmed, *model.unconfirmed):
                assert fact in table


@pytest.mark.parametrize(
    ("edit", "key", "words"),
    [
        (('ovp = "level"', 'ovp = "lots"'), "capabilities.ovp", "expected one of"),
        (
            ("panel_lock = true", "panel_lock = true\nwobble = true"),
            "capabilities.wobble",
            "unknown key",
        ),
        (('lock = "SYST:REM"\n', ""), "capabilities.panel_lock", '"lock"'),
        (
            ('"voltage?" = "VOLT? (@{chs})"', '"voltage?" = "VOLT? (@{chan})"'),
            "queries.voltage?.send",
            "unknown field",
        ),
        (
            ('max_voltage = "6 V", max_current = "5 A"', 'max_voltage = "6", max_current = "5 A"'),
            "models.E36312A.channels.1.max_voltage",
            "voltage",
        ),
        (
            (
                '"voltage?" = "VOLT? (@{chs})"',
                '"voltage?" = { send = "VOLT? (@{chs})", trailing = 1 }',
            ),
            "queries.voltage?.trailing",
            "serial link only",
        ),
    ],
)
def test_a_mistake_in_a_dialect_file_names_the_file_and_key(tmp_path, edit, key, words):
    source = ROOT / "interlock" / "dialects" / "keysight_e36300.toml"
    text = source.read_text(encoding="utf-8")
    assert edit[0] in text
    broken = tmp_path / "keysight_e36300.toml"
    broken.write_text(text.replace(edit[0], edit[1], 1), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_dialect(broken)
    assert error.value.key == key
    assert words in error.value.problem
