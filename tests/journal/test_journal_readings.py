"""Measurements in both forms: one net's reading per entry (as journals have held since
the start, and a client's measure still writes) and a supply's nets in one entry (the
monitor's pass). A journal holding both verifies, shows and explains each net's readings."""

from __future__ import annotations

from interlock.cli import main
from interlock.journal import Journal, JournalReader, verify_journal
from interlock.journal.entries import Kind, net_readings
from interlock.journal.plot import run_story
from interlock.journal.postmortem import write_postmortem
from interlock.journal.render import describe

RUN = "20260314T093000Z-abc123"


def write_both(path) -> None:
    with Journal(path, bench="sim-bench") as journal:
        journal.begin_run(RUN)
        journal.operator("olga", "arm")
        for net in ("VBUS", "V3V3", "V5"):  # nets a client asked for: the plot draws them
            journal.request("alice", "test", "measure", net=net)
        journal.measurement("VBUS", voltage=24.01, current=0.2)  # one net, as before
        journal.measurements(
            "psu1",
            {
                "VBUS": {"voltage": 24.02, "current": 0.21},
                "V3V3": {"voltage": 3.3, "current": 0.05},
            },
        )
        journal.measurements("psu2", {"V5": {"voltage": 5.0, "current": 0.1}}, durable=False)
        journal.flush()


def measurement_entries(path):
    with JournalReader(path) as reader:
        return [e for e in reader.entries() if e.kind == Kind.MEASUREMENT]


def test_a_journal_with_both_forms_verifies_and_reads_each_nets_readings(tmp_path):
    path = tmp_path / "journal.sqlite"
    write_both(path)
    assert verify_journal(path).entries == 7
    old, several, single = (net_readings(e.payload) for e in measurement_entries(path))
    assert old == {"VBUS": {"voltage": 24.01, "current": 0.2}}
    assert several == {
        "VBUS": {"voltage": 24.02, "current": 0.21},
        "V3V3": {"voltage": 3.3, "current": 0.05},
    }
    assert single == {"V5": {"voltage": 5.0, "current": 0.1}}


def test_show_and_the_console_tail_name_every_net_and_its_values(tmp_path, capsys):
    path = tmp_path / "journal.sqlite"
    write_both(path)
    shown = [describe(e) for e in measurement_entries(path)]  # the console's tail, too
    assert shown == [
        "VBUS 24.01 V 200 mA",
        "psu1: V3V3 3.3 V 50 mA; VBUS 24.02 V 210 mA",
        "psu2: V5 5 V 100 mA",
    ]
    assert main(["journal", "show", "--journal", str(path), "--kind", "measurement"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split("controller", 1)[1].strip() for line in out] == shown


def test_the_post_mortem_finds_each_nets_readings_in_both_forms(tmp_path):
    path = tmp_path / "journal.sqlite"
    write_both(path)
    with JournalReader(path) as reader:
        series = run_story(list(reader.entries())).nets
    assert [v for _, v in series["VBUS"].measured_v] == [24.01, 24.02]
    assert [i for _, i in series["V3V3"].measured_i] == [0.05]
    assert [v for _, v in series["V5"].measured_v] == [5.0]
    result = write_postmortem(path, RUN, tmp_path / "pm")
    text = result.timeline.read_text(encoding="utf-8")
    assert "4 measurements" in text  # one per net's reading, whichever the form
    assert "psu1: V3V3 3.3 V 50 mA; VBUS 24.02 V 210 mA" in text


def test_a_payload_of_neither_form_reads_as_no_readings():
    assert net_readings({}) == {}
    assert net_readings({"net": 3}) == {}
    assert net_readings({"nets": {"VBUS": 5.0, "V5": {"voltage": 5.0}}}) == {"V5": {"voltage": 5.0}}
