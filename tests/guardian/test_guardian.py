"""The guardian turns every supply output off when the service dies, and only then.

Here the "service" is a controller in this process, and its death is what the
kernel does to a dead process's descriptors: the guardian's pipe closes. The
whole-process test (kill -9 of a real ``interlock serve``) is in the service tests.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

from interlock.config import load_configuration
from interlock.controller import Controller
from interlock.guardian import Guardian, plan_for
from interlock.journal import Journal, JournalReader

from ..controller.support import ROOT, all_live, edited_bench

# The bar: every output off within 1 s of the death. Typically tens of ms.
BAR_S = 1.0


def outputs(sim, configuration) -> dict[str, bool]:
    on = {}
    for net, wiring in configuration.bench.wiring.items():
        if wiring.supply is not None:
            channel = sim.instruments[wiring.supply.instrument].channels[wiring.supply.channel]
            on[net] = channel.output
    return on


@pytest.fixture
def live_bench(sim_bench_factory, tmp_path):
    """Three nets live, K1 welded: what the relay board's watchdog cannot undo."""
    bench_file = edited_bench(tmp_path, {})
    configuration = load_configuration(bench_file)
    sim = sim_bench_factory(bench=configuration.bench)
    configuration.bench.service.journal.parent.mkdir(parents=True, exist_ok=True)
    journal = Journal(configuration.bench.service.journal, bench=configuration.bench.name)
    controller = Controller(configuration, journal, resources=sim.resources)
    controller.connect()
    controller.arm("operator")
    all_live(controller)
    sim.inject("weld:K1")
    assert all(outputs(sim, configuration).values())
    yield sim, configuration, controller
    controller.close()
    journal.close()


def die(controller: Controller) -> None:
    """The controller stops acting at once: no safe state, no goodbye."""
    controller.monitor.stop()
    controller.supervisor.stop()


def service_dies(controller: Controller, guardian: Guardian, within: float = 30) -> None:
    """The service's process ends (the kernel closes its end of the pipe); the guardian
    acts and ends within ``within`` seconds."""
    die(controller)
    os.close(guardian._pipe)
    guardian._pipe = None
    deadline = time.monotonic() + within
    while guardian.running and time.monotonic() < deadline:
        time.sleep(0.01)


def test_the_guardian_turns_every_output_off_when_the_service_dies(live_bench, tmp_path):
    sim, configuration, controller = live_bench
    guardian = Guardian(configuration.bench.path, sim.resources, tmp_path / "guardian.log")
    guardian.start()
    die(controller)
    died = time.monotonic()
    os.close(guardian._pipe)  # what the kernel does when the service's process ends
    guardian._pipe = None
    while any(outputs(sim, configuration).values()) and time.monotonic() - died < 10:
        time.sleep(0.002)
    took = time.monotonic() - died
    assert not any(outputs(sim, configuration).values())
    assert took < BAR_S, f"outputs off {took:.3f} s after the service died"
    guardian.stand_down()  # reaps it
    log = (tmp_path / "guardian.log").read_text()
    assert "outputs off in" in log and "(verified)" in log
    reader = JournalReader(configuration.bench.service.journal)
    try:
        faults = [e for e in reader.entries() if e.kind == "fault"]
        commands = [e for e in reader.entries() if e.kind == "command" and e.actor == "guardian"]
    finally:
        reader.close()
    assert faults[-1].actor == "guardian" and faults[-1].payload["cause"] == "service-died"
    assert "VLOGIC" in faults[-1].payload["detail"] and faults[-1].payload["verified"]
    # Journaled before it went out, as every command is.
    assert commands and commands[-1].payload["data"].startswith("OUTP OFF,(@3,2,1)")


def test_its_log_removed_before_it_acts_the_guardian_reports_where_it_was(live_bench, tmp_path):
    sim, configuration, controller = live_bench
    log = tmp_path / "run" / "guardian.log"
    guardian = Guardian(configuration.bench.path, sim.resources, log)
    guardian.start()
    shutil.rmtree(log.parent)  # rm -rf run/ while the service runs
    service_dies(controller, guardian)
    assert not any(outputs(sim, configuration).values())
    guardian.stand_down()  # reaps it
    assert "outputs off in" in log.read_text() and "(verified)" in log.read_text()
    assert oct(log.stat().st_mode & 0o777) == oct(0o600)


def test_a_guardian_stood_down_does_nothing(live_bench, tmp_path):
    sim, configuration, _controller = live_bench
    guardian = Guardian(configuration.bench.path, sim.resources, tmp_path / "guardian.log")
    guardian.start()
    pid = guardian.pid
    guardian.stand_down()
    assert not guardian.running
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    assert all(outputs(sim, configuration).values())


def test_the_guardian_leaves_a_supply_that_is_not_the_one_named_alone(live_bench, tmp_path):
    sim, configuration, controller = live_bench
    guardian = Guardian(configuration.bench.path, sim.resources, tmp_path / "guardian.log")
    guardian.start()
    sim.inject("identity:psu=Keysight Technologies,E36312A,MY59009999")
    service_dies(controller, guardian)
    assert all(outputs(sim, configuration).values()), "an unknown instrument was commanded"
    assert "not commanded" in (tmp_path / "guardian.log").read_text()


def test_the_plan_covers_every_wired_supply_channel_in_power_off_order():
    plan = plan_for(load_configuration(ROOT / "bench.toml"))
    [psu] = plan.supplies
    assert psu.channels == (3, 2, 1) and psu.nets == ("MOTOR", "VBUS", "VLOGIC")


def test_a_service_whose_guardian_dies_trips(sim_bench_factory, tmp_path):
    """Without its guardian, a death of the service would leave the supplies on: a fault."""
    import signal

    from interlock.service.runtime import Service

    bench_file = edited_bench(tmp_path, {})
    configuration = load_configuration(bench_file)
    sim = sim_bench_factory(bench=configuration.bench)
    service = Service(configuration, resources=sim.resources, guardian=True)
    service.open()
    try:
        assert service.controller.state == "safe"
        pid = service.guardian.pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while service.controller.state != "fault" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert service.controller.fault_cause.startswith("guardian: the guardian process ended")
    finally:
        service.close()


def test_a_service_stopping_cleanly_stands_its_guardian_down(sim_bench_factory, tmp_path):
    from interlock.service.runtime import Service

    bench_file = edited_bench(tmp_path, {})
    configuration = load_configuration(bench_file)
    sim = sim_bench_factory(bench=configuration.bench)
    service = Service(configuration, resources=sim.resources, guardian=True)
    service.open()
    guardian = service.guardian
    pid = guardian.pid
    service.close()
    assert not guardian.running
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    log = tmp_path / "run" / "guardian.log"
    assert not log.exists() or "died" not in log.read_text()
