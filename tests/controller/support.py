"""A controller on a simulated bench, and the ground-truth checks the tests share."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from interlock.config import Configuration, load_configuration
from interlock.controller import Controller
from interlock.journal import Journal, JournalReader
from interlock.journal.entries import payload_data
from interlock.sim.bench import SimulatedBench

ROOT = Path(__file__).resolve().parents[2]
# Comfortably past the board's 500 ms watchdog, even on a loaded machine.
PAST_THE_WATCHDOG_S = 1.5


@dataclass
class Rig:
    sim: SimulatedBench
    controller: Controller
    journal: Journal
    configuration: Configuration

    @property
    def limits(self):
        return self.configuration.limits

    def truth(self) -> dict:
        return self.sim.truth()

    def supply_driver(self, net: str):
        """The controller's driver of the supply that feeds ``net``."""
        controller = self.controller
        return controller.instruments.supplies[controller.ports[net].supply]

    def power_up_logic(self, volts: float = 5.0) -> None:
        self.controller.set_voltage("VLOGIC", volts)
        self.controller.output_on("VLOGIC")

    def power_up_bus(self, volts: float = 24.0) -> None:
        self.controller.set_voltage("VBUS", 4.0)
        self.controller.output_on("VBUS")
        if volts != 4.0:
            self.controller.set_voltage("VBUS", volts)


def edited_bench(directory: Path, edits: dict[str, list[tuple[str, str]]]) -> Path:
    """A copy of the root bench and profiles in ``directory``, with text replaced per file."""
    import shutil

    shutil.copy(ROOT / "bench.toml", directory / "bench.toml")
    shutil.copytree(ROOT / "profiles", directory / "profiles", dirs_exist_ok=True)
    for name, replacements in edits.items():
        path = directory / name
        text = path.read_text()
        for old, new in replacements:
            assert old in text, f"{old!r} not in {name}"
            text = text.replace(old, new, 1)
        path.write_text(text)
    return directory / "bench.toml"


def setting_commands(rig: Rig) -> list[str]:
    """The setting lines the supply received (not the monitor's queries)."""
    lines = [c["line"] for c in rig.truth()["instruments"]["psu"]["commands"]]
    return [line for line in lines if line.startswith(("VOLT ", "CURR ", "OUTP ", "VOLT:PROT "))]


def make_rig(sim_factory, tmp_path: Path, *, faults=(), connect=True, arm=True, bench=None) -> Rig:
    configuration = load_configuration(bench or ROOT / "bench.toml")
    sim = sim_factory(bench=configuration.bench, faults=faults)
    journal = Journal(tmp_path / "journal.sqlite", bench=configuration.bench.name)
    controller = Controller(configuration, journal, resources=sim.resources)
    rig = Rig(sim, controller, journal, configuration)
    if connect:
        controller.connect()
        if arm:
            controller.arm("operator")
    return rig


def close_rig(rig: Rig) -> None:
    with contextlib.suppress(Exception):
        rig.controller.close()
    rig.journal.close()


def restart(rig: Rig) -> Controller:
    """A new controller on the same instruments and journal, as a restarted service is."""
    journal = Journal(rig.journal.path, bench=rig.configuration.bench.name)
    controller = Controller(rig.configuration, journal, resources=rig.sim.resources)
    controller.connect()
    return controller


def close_restarted(controller: Controller) -> None:
    controller.close()
    controller.journal.close()


def all_live(controller: Controller, motor: float = 3.0) -> None:
    """Every net of the default bench live, in the profile's power-on order (VLOGIC, VBUS,
    then MOTOR), as the quick start has them."""
    controller.set_voltage("VLOGIC", 5.0)
    controller.output_on("VLOGIC")
    controller.set_voltage("VBUS", 4.0)
    controller.output_on("VBUS")
    controller.set_voltage("MOTOR", motor)
    controller.output_on("MOTOR")


# -- ground truth checks -----------------------------------------------------------


def net_tolerance(limits, net: str) -> float:
    return limits.nets[net].readback_tolerance(limits.nets[net].max_voltage)


def assert_truth_within_limits(rig: Rig) -> None:
    """No DUT net ever saw more than its profile allows (plus the readback tolerance)."""
    truth = rig.truth()
    for net, record in truth["nets"].items():
        limits = rig.limits.nets.get(net)
        if limits is None:
            continue
        assert record["max_voltage"] <= limits.max_voltage + net_tolerance(rig.limits, net), (
            f"{net} saw {record['max_voltage']} V (limit {limits.max_voltage} V)"
        )
        assert record["max_current"] <= limits.max_current * 1.01 + 1e-3, (
            f"{net} carried {record['max_current']} A (limit {limits.max_current} A)"
        )


def assert_no_forbidden_relays(rig: Rig) -> None:
    """Replay every contact change the board made: no never-together group ever had two closed."""
    closed: set[str] = set()
    for change in rig.truth()["relays"]:
        (closed.add if change["closed"] else closed.discard)(change["relay"])
        for group in rig.limits.never_together:
            both = group.relays & closed
            assert len(both) <= 1, f"{sorted(both)} closed together at {change['monotonic']}"


def assert_intents_before_commands(rig: Rig) -> None:
    """Every line an instrument received was journaled, durably, before it arrived.

    Threads (the monitor, an API call) journal and send concurrently, so the
    wire order may differ from the journal order: each received line is
    matched to the earliest unused intent with the same bytes written before it.
    The truth is read first: whatever it holds arrived after its intent was on
    disk, so the journal read after it holds every intent needed. A pure query's
    record is its command entry, or its answer, which takes that entry's place,
    time and bytes while both wait for a commit (Journal.answer).

    The one exception is the safe state's: an off line the journal did not take within
    SAFE_OFF_WAIT_S (down, or only slow on a loaded machine) goes out all the same, its
    record flagged ``unjournaled`` and written later (the journal flags nothing else:
    tests/journal); such a line must have that record, staged before it went out.
    """
    truth = rig.truth()
    rig.journal.flush()  # pure queries are journaled with the next commit
    intents: dict[tuple[str, str], list[float]] = {}
    flagged: dict[tuple[str, str], list[float]] = {}
    with JournalReader(rig.journal.path) as reader:
        for entry in reader.entries():
            # A record written after its command went out (journal down) is no intent.
            asked = entry.kind == "readback" and "data" in entry.payload
            if entry.kind == "command" or asked:
                line = payload_data(entry.payload).decode().rstrip("\r\n")
                if "unjournaled" in entry.payload and entry.payload.get("purpose") != "safe-state":
                    continue  # no other line may go out before its record
                records = flagged if "unjournaled" in entry.payload else intents
                records.setdefault((entry.payload["instrument"], line), []).append(entry.mono_time)
    for instrument, record in truth["instruments"].items():
        for received in record["commands"]:
            line = received["line"]
            pool = intents.get((instrument, line), [])
            earlier = [t for t in pool if t <= received["monotonic"]]
            if not earlier:  # the safe state's, sent unjournaled (the journal refuses others)
                pool = flagged.get((instrument, line), [])
                earlier = [t for t in pool if t <= received["monotonic"]]
            if not earlier:
                raise AssertionError(f"{instrument} got {line!r} with no intent written before it")
            pool.remove(min(earlier))


def assert_all_outputs_off(rig: Rig, settle: float = 0.0) -> None:
    """The DUT sees nothing: every net at (about) 0 V."""
    time.sleep(settle)
    for net, record in rig.truth()["nets"].items():
        assert abs(record["voltage"]) < 0.05, f"{net} still at {record['voltage']} V"


def assert_safety_invariants(rig: Rig) -> None:
    assert_truth_within_limits(rig)
    assert_no_forbidden_relays(rig)
    assert_intents_before_commands(rig)
