"""The SCPI layer on its own: header tree, compound commands, parameters, error queue."""

from __future__ import annotations

import pytest

from interlock.sim.scpi import (
    CommandSet,
    ErrorQueue,
    ScpiError,
    parse_channel_list,
    parse_number,
    parse_pattern,
    split_units,
)


@pytest.fixture
def toy():
    errors = ErrorQueue()
    commands = CommandSet(errors)
    seen = []
    commands.command("[SOURce:]VOLTage[:LEVel]", lambda p: seen.append(("volt", p.items)))
    commands.command("[SOURce:]CURRent[:LEVel]", lambda p: seen.append(("curr", p.items)))
    commands.query("[SOURce:]VOLTage[:LEVel]", lambda p: "V")
    commands.query("MEASure[:SCALar]:VOLTage[:DC]", lambda p: "M")
    commands.query("MEASure[:SCALar]:CURRent[:DC]", lambda p: "I")
    commands.query("*IDN", lambda p: "ID")
    return commands, errors, seen


def test_pattern_short_and_long_forms():
    nodes = parse_pattern("[SOURce:]VOLTage[:LEVel]")
    assert [(n.short, n.long, n.optional) for n in nodes] == [
        ("SOUR", "SOURCE", True), ("VOLT", "VOLTAGE", False), ("LEV", "LEVEL", True)]


@pytest.mark.parametrize("line", [
    "VOLT 1", "volt 1", "VOLTage 1", "voltage 1", "SOUR:VOLT 1", ":source:voltage:level 1",
    "VOLT:LEV 1", "  VOLT   1  ", "VOLT\t1",
])
def test_headers_in_any_spelling_reach_the_same_command(toy, line):
    commands, errors, seen = toy
    assert commands.execute(line) is None
    assert seen == [("volt", ("1",))]
    assert errors.count() == 0


@pytest.mark.parametrize("line, code", [
    ("VOLTA 1", -113),  # neither short nor long form
    ("VOL 1", -113),
    ("FOO?", -113),
    ("*IDN", -113),  # the query exists, the command does not
    ("VOLT5", -113),
    ("VOLT 1,,2", -102),
    ("VOLT (1", -102),
    ("VOLT \"open", -151),
    ("VOLT\x01 1", -101),
    ("#VOLT", -102),
])
def test_malformed_lines_land_in_the_error_queue(toy, line, code):
    commands, errors, _ = toy
    commands.execute(line)
    assert errors.codes() == [code]


def test_compound_commands_follow_the_header_path(toy):
    commands, errors, seen = toy
    assert commands.execute("SOUR:VOLT 1;CURR 2") is None  # CURR under SOUR
    assert commands.execute("MEAS:VOLT?;CURR?") == "M;I"  # CURR? under MEAS
    assert commands.execute("MEAS:VOLT?;:VOLT?;*IDN?") == "M;V;ID"
    assert seen == [("volt", ("1",)), ("curr", ("2",))]
    assert errors.count() == 0
    # without the leading colon a header is looked up under the previous one's path
    assert commands.execute("MEAS:VOLT?;VOLT?") == "M;M"
    assert commands.execute("SOUR:VOLT 1;MEAS:VOLT?") is None
    assert errors.codes() == [-113]


def test_one_bad_unit_does_not_stop_the_rest(toy):
    commands, errors, seen = toy
    assert commands.execute("NOPE 1;:VOLT 3;*IDN?") == "ID"
    assert seen == [("volt", ("3",))]
    assert errors.codes() == [-113]


def test_semicolons_inside_strings_and_lists_do_not_split():
    assert split_units('A "x;y";B (@1;2)') == ['A "x;y"', "B (@1;2)"]


def test_error_queue_reports_in_order_and_overflows_with_350():
    errors = ErrorQueue(capacity=3)
    for code in (-113, -222, -102, -109, -108):
        errors.push(code)
    assert [errors.pop() for _ in range(4)] == [
        '-113,"Undefined header"', '-222,"Data out of range"', '-350,"Queue overflow"',
        '+0,"No error"']
    errors.push(-222)
    assert errors.take_event_status() == 16 | 32  # execution and command errors seen
    assert errors.take_event_status() == 0


@pytest.mark.parametrize("text, unit, value", [
    ("5", "V", 5.0), ("+5.0", "V", 5.0), ("5e-1", "V", 0.5), (".5", "V", 0.5),
    ("500 mV", "V", 0.5), ("500MV", "V", 0.5), ("250 mA", "A", 0.25), ("4.7 kohm", "OHM", 4700.0),
    ("1 MOHM", "OHM", 1e6), ("MAX", "V", 6.0), ("maximum", "V", 6.0), ("min", "V", 0.0),
])
def test_numbers_with_suffixes_and_keywords(text, unit, value):
    assert parse_number(text, unit, {"MIN": 0.0, "MAX": 6.0}) == pytest.approx(value)


@pytest.mark.parametrize("text, code", [
    ("5 A", -131), ("abc", -104), ("1e999", -123), ("5 V", -138), ("--5", -120),
])
def test_bad_numbers(text, code):
    unit = "" if text == "5 V" else "V"
    with pytest.raises(ScpiError) as info:
        parse_number(text, unit)
    assert info.value.code == code


def test_channel_lists():
    assert parse_channel_list("(@1)", {1, 2, 3}) == [1]
    assert parse_channel_list("(@3,1)", {1, 2, 3}) == [3, 1]
    assert parse_channel_list("( @1:3 )", {1, 2, 3}) == [1, 2, 3]
    for bad, code in (("(@4)", -222), ("(@)", -102), ("(1)", -102), ("(@1,,2)", -102)):
        with pytest.raises(ScpiError) as info:
            parse_channel_list(bad, {1, 2, 3})
        assert info.value.code == code


@pytest.fixture
def numbered():
    errors = ErrorQueue()
    commands = CommandSet(errors)
    seen = []
    commands.command("[SOURce#:]VOLTage[:LEVel]", lambda p: seen.append(("volt", p.suffixes)))
    commands.command("[SOURce#:]CURRent", lambda p: seen.append(("curr", p.suffixes)))
    commands.command("CH#:VOLTage", lambda p: seen.append(("ch", p.suffixes, p.items)))
    commands.query("OUTPut#:TRACk#", lambda p: f"{p.suffixes}")
    return commands, errors, seen


@pytest.mark.parametrize("line, suffixes", [
    ("SOUR1:VOLT 1", (1,)), (":source2:voltage:level 1", (2,)), ("SOURCE12:VOLT 1", (12,)),
    ("SOUR:VOLT 1", (None,)), ("VOLT 1", (None,)), ("SOUR3:VOLT:LEV 1", (3,)),
])
def test_a_numeric_header_suffix_reaches_the_handler(numbered, line, suffixes):
    commands, errors, seen = numbered
    commands.execute(line)
    assert seen == [("volt", suffixes)]
    assert errors.count() == 0


def test_numeric_suffixes_on_several_nodes_and_in_the_header_path(numbered):
    commands, errors, seen = numbered
    assert commands.execute("OUTP2:TRAC3?;:OUTP:TRAC?") == "(2, 3);(None, None)"
    commands.execute("SOUR2:VOLT 1;CURR 2")  # CURR under SOUR2: the path keeps its suffix
    commands.execute("CH3:VOLT 5,(@1)")
    assert seen == [("volt", (2,)), ("curr", (2,)), ("ch", (3,), ("5", "(@1)"))]
    assert errors.count() == 0


@pytest.mark.parametrize("line", [
    "VOLT1 1",  # VOLTage takes no suffix
    "SOUR1234:VOLT 1",  # more digits than any channel or slot
    "SOURA1:VOLT 1", "SOUR1A:VOLT 1", "CH1:VOLT1 5",
])
def test_a_suffix_where_none_is_taken_or_malformed_is_an_undefined_header(numbered, line):
    commands, errors, seen = numbered
    commands.execute(line)
    assert seen == []
    assert errors.codes() in ([-113], [-102])


def test_the_undefined_header_detail_is_the_familys():
    errors = ErrorQueue()
    CommandSet(errors, undefined_detail="keyword cannot be found").execute(":FOO:BAR")
    assert errors.pop() == '-113,"Undefined header;keyword cannot be found"'


def test_a_repeated_header_is_looked_up_once_and_a_new_command_is_found(toy, monkeypatch):
    import interlock.sim.scpi as scpi

    commands, errors, _ = toy
    walks = []
    match = scpi._match_nodes
    monkeypatch.setattr(scpi, "_match_nodes", lambda *a: walks.append(a) or match(*a))
    for _ in range(3):
        assert commands.execute("MEAS:VOLT?;:MEAS:CURR?") == "M;I"
    walked = len(walks)
    assert commands.execute("MEAS:VOLT?;:MEAS:CURR?") == "M;I"
    assert len(walks) == walked  # remembered: no walk of the tree
    assert commands.execute("OUTP?") is None and errors.codes() == [-113]
    commands.query("OUTPut[:STATe]", lambda p: "0")  # registering forgets what was looked up
    assert commands.execute("OUTP?") == "0"
    assert errors.codes() == [-113]  # the one before it was registered


def test_the_lookups_remembered_are_bounded(toy):
    import interlock.sim.scpi as scpi

    commands, _, _ = toy
    for i in range(3 * scpi._LOOKUPS_KEPT):
        commands.execute(f"FOO{i}:BAR?")
    assert len(commands._looked_up) <= scpi._LOOKUPS_KEPT
    assert commands.execute("*IDN?") == "ID"
