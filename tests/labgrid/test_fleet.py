"""A lab of benches on loopback: a labgrid coordinator, an exporter, two simulated benches.

User A (ws-a/alice) acquires place bench-a and powers it on through labgrid's
PowerProtocol (``labgrid-client power on``, the lab's environment in
``LG_ENV``); an over-limit configuration is refused with the interlock's
reason; A runs a sequence through labgrid's pytest plugin and releases. User
B (ws-b/bob) is refused while A holds the place, but may stop the bench.
Releasing the place while live drives the bench safe. ``console --place``
opens a bench of the fleet; ``fleet status`` shows both benches, and a killed
one unreachable. The tests run in file order, on one lab per module.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import textwrap
import time
from typing import Any

import pytest

import interlock
from interlock.commands.console import console_source
from interlock.config import load_bench
from interlock.errors import AccessDenied
from interlock.service.tokens import read_token
from interlock.sim.client import SimulatorClient
from tests.labgrid.lab import BIN, LEASE_TIMEOUT, POWER_NETS, ROOT, Bench, Lab

ALICE, BOB = "ws-a/alice", "ws-b/bob"
OFF_VOLTS = 0.05


def truth(bench: Bench) -> dict[str, Any]:
    return SimulatorClient.of_bench(load_bench(bench.path)).truth()


def live(bench: Bench) -> dict[str, float]:
    nets = truth(bench)["nets"]
    return {net: rec["voltage"] for net, rec in nets.items() if rec["voltage"] > OFF_VOLTS}


def remote(lab: Lab, bench: Bench, role: str, who: str) -> interlock.Client:
    """A client on another machine: the address, the lab's CA and a token, no bench file."""
    token = read_token(bench.path.parent / "run" / "tokens", role)
    return interlock.connect(
        None, role=role, token=token, who=who, address=bench.address, ca=lab.ca_file
    )


def status(lab: Lab, bench: Bench) -> dict[str, Any]:
    with remote(lab, bench, "viewer", "test") as client:
        return client.status()


def reset(lab: Lab, bench: Bench) -> None:
    with remote(lab, bench, "operator", ALICE) as client:
        if client.status()["state"] == "fault":
            client.reset()


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def lab_env(lab: Lab):
    return lab.write_env("lab.yaml", POWER_NETS)


def alice(lab: Lab, lab_env) -> dict[str, str]:
    """A's shell with the lab's environment: ``power`` finds the place's target in it."""
    return lab.user(ALICE, LG_ENV=str(lab_env))


def alice_bare(lab: Lab) -> dict[str, str]:
    """A's shell without it: with an environment, labgrid-client acquires and releases
    every place the environment names, not only -p's."""
    return lab.user(ALICE)


def held_by_alice(lab: Lab) -> None:
    """A holds bench-a. Each test that needs it says so: tests of this module may run
    in another order, or on another worker with a lab of its own (pytest-xdist)."""
    result = lab.lg(alice_bare(lab), "-p", "bench-a", "acquire")
    assert result.returncode == 0 or "already acquired" in result.stderr, result.stderr


def test_the_benches_are_exported_as_labgrid_resources(lab):
    listed = lab.lg(lab.env, "resources", check=True).stdout.split()
    assert listed == ["hostA/bench-a/InterlockBench", "hostA/bench-b/InterlockBench"]


def test_labgrid_client_powers_a_place_through_the_interlock(lab, lab_env):
    bench = lab.benches["bench-a"]
    user = alice(lab, lab_env)
    held_by_alice(lab)
    result = lab.lg(user, "-p", "bench-a", "power", "on")
    assert result.returncode == 0, result.stderr
    seen = status(lab, bench)
    assert seen["state"] == "live"
    assert seen["lease"]["who"] == ALICE and seen["lease"]["place"] == "bench-a"
    assert live(bench) == pytest.approx({"VLOGIC": 5.0, "VBUS": 24.0}, abs=0.1)
    # labgrid-client has exited: the place lease keeps the bench live past the lease timeout.
    time.sleep(3 * LEASE_TIMEOUT)
    assert status(lab, bench)["state"] == "live"
    assert "is on" in lab.lg(user, "-p", "bench-a", "power", "get", check=True).stdout
    lab.lg(user, "-p", "bench-a", "power", "off", check=True)
    assert status(lab, bench)["state"] == "safe"
    assert not live(bench) and truth(bench)["contacts"] == []


def test_an_over_limit_configuration_is_refused_with_the_interlocks_reason(lab):
    bench = lab.benches["bench-a"]
    over = dict(POWER_NETS, VBUS={"voltage": "26 V", "current_limit": "300 mA", "start": "4 V"})
    user = lab.user(ALICE, LG_ENV=str(lab.write_env("over.yaml", over)))
    result = lab.lg(user, "-p", "bench-a", "power", "on")
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("labgrid-client: Error: refused by the interlock: power on of bench")
    assert "LimitViolation" in line and "nets.VBUS.max_voltage" in line, line
    # What the call turned on went off again; nothing beyond the limit reached the DUT.
    assert not live(bench)
    assert truth(bench)["nets"]["VBUS"]["max_voltage"] < 25.0
    lab.lg(user, "-p", "bench-a", "power", "off", check=True)


INNER_TESTS = textwrap.dedent('''
    """A team's tests: labgrid's pytest plugin gives the target, the interlock decides."""
    import os

    import pytest

    from interlock.config import load_configuration
    from interlock.sequence import bind, load_sequence
    from interlock.sequence.runner import SequenceRunner
    from interlock.sequence.target import ClientTarget


    def test_power_through_labgrid(target):
        power = target.get_driver("PowerProtocol")
        bench = target.get_driver("InterlockClientDriver").client
        power.on()
        assert bench.measure("VBUS")["voltage"] == pytest.approx(24.0, abs=0.1)
        power.off()
        assert bench.status()["state"] == "safe"


    def test_a_sequence_through_labgrid(target):
        bench = target.get_driver("InterlockClientDriver").client
        # The sequence is bound against the bench's configuration, from its host.
        configuration = load_configuration(os.environ["BENCH_FILE"])
        sequence = bind(load_sequence(os.environ["SEQUENCE"]), configuration)
        report = SequenceRunner(sequence, configuration, ClientTarget(bench),
                                operator="ws-a/alice", confirm=lambda step: True).run()
        assert report.exit_code == 0, [(r.step.number, r.outcome, r.detail) for r in report.results]
        assert report.completed
        assert bench.status()["state"] == "safe"
''')


def test_labgrids_pytest_plugin_runs_a_sequence_through_the_interlock(lab):
    bench = lab.benches["bench-a"]
    held_by_alice(lab)
    inner = lab.directory / "inner"
    inner.mkdir()
    (inner / "test_bench_a.py").write_text(INNER_TESTS)
    env = lab.user(
        ALICE,
        BENCH_FILE=str(bench.path),
        SEQUENCE=str(ROOT / "sequences" / "mdb24_power_up.toml"),
    )
    place_env = lab.write_env("place.yaml", POWER_NETS, place="bench-a")
    result = subprocess.run(
        [
            str(BIN / "python"),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "--rootdir",
            str(inner),
            "--lg-env",
            str(place_env),
            str(inner),
        ],
        env=env,
        cwd=inner,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout
    assert status(lab, bench)["state"] == "safe"


def test_another_user_is_refused_while_the_place_is_held_but_may_stop_it(lab, lab_env):
    bench = lab.benches["bench-a"]
    held_by_alice(lab)
    lab.lg(alice(lab, lab_env), "-p", "bench-a", "power", "on", check=True)
    # labgrid itself refuses B ...
    bob_env = lab.user(BOB, LG_ENV=str(lab_env))
    refused = lab.lg(bob_env, "-p", "bench-a", "power", "off")
    assert refused.returncode == 1 and "not acquired by your user" in refused.stderr
    # ... and so does the bench, to B going around labgrid.
    with remote(lab, bench, "operator", BOB) as bob:
        with pytest.raises(AccessDenied, match="held by ws-a/alice in labgrid, not by ws-b/bob"):
            bob.set_voltage("VLOGIC", 4.0)
        with pytest.raises(AccessDenied, match="held by ws-a/alice"):
            bob.disarm()
        bob.estop()  # anyone may stop
    seen = status(lab, bench)
    assert seen["state"] == "fault" and "emergency stop" in seen["fault"].lower()
    assert not live(bench)
    reset(lab, bench)


def test_releasing_the_place_while_live_drives_the_bench_safe(lab, lab_env):
    bench = lab.benches["bench-a"]
    user = alice(lab, lab_env)
    held_by_alice(lab)
    lab.lg(user, "-p", "bench-a", "power", "on", check=True)
    assert status(lab, bench)["state"] == "live"
    lab.lg(alice_bare(lab), "-p", "bench-a", "release", check=True)
    wait_until(lambda: not live(bench))
    seen = status(lab, bench)
    assert seen["state"] == "fault"
    assert "place bench-a released" in seen["fault"], seen["fault"]
    assert seen["lease"] is None
    reset_refused = pytest.raises(AccessDenied, match="not acquired in labgrid")
    with reset_refused, remote(lab, bench, "operator", ALICE) as client:
        client.reset()  # the place first
    lab.lg(alice_bare(lab), "-p", "bench-a", "acquire", check=True)
    reset(lab, bench)


def test_the_console_opens_a_bench_of_the_fleet_by_its_place(lab):
    from interlock.console import ConsoleApp

    args = argparse.Namespace(
        place="bench-b",
        bench="bench.toml",
        role="viewer",
        coordinator=lab.coordinator,
        ca=str(lab.ca_file),
        tokens=str(lab.directory / "{bench}" / "run" / "tokens"),
    )

    async def scenario() -> None:
        app = ConsoleApp(console_source(args))
        async with app.run_test(size=(120, 40)) as pilot:
            deadline = time.monotonic() + 10
            while app.state != "safe":
                assert time.monotonic() < deadline, app.problem
                await pilot.pause(0.05)
            assert "BENCH bench-b" in str(app.query_one("Banner").render())
            assert lab.benches["bench-b"].address in str(app.query_one("ConnectionLine").render())

    asyncio.run(scenario())


def fleet(lab: Lab, *options: str) -> subprocess.CompletedProcess:
    tokens = str(lab.directory / "{bench}" / "run" / "tokens")
    return subprocess.run(
        [
            str(BIN / "interlock"),
            "fleet",
            "status",
            "--coordinator",
            lab.coordinator,
            "--ca",
            str(lab.ca_file),
            "--tokens",
            tokens,
            *options,
        ],
        env=lab.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_fleet_status_shows_both_benches_and_a_killed_one_unreachable(lab, lab_env):
    held_by_alice(lab)
    lab.lg(alice(lab, lab_env), "-p", "bench-a", "power", "on", check=True)
    result = fleet(lab, "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["place"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"bench-a", "bench-b"}
    assert rows["bench-a"]["state"] == "live"
    assert rows["bench-a"]["place_holder"] == rows["bench-a"]["lease_holder"] == ALICE
    assert rows["bench-b"]["state"] == "safe" and rows["bench-b"]["place_holder"] is None
    assert rows["bench-b"]["environment"] == "simulation"

    killed = lab.benches["bench-b"]
    os.kill(killed.service.popen.pid, signal.SIGKILL)
    killed.service.popen.wait(10)
    text = fleet(lab)
    assert text.returncode == 0, text.stderr
    lines = {line.split()[0]: line.split() for line in text.stdout.splitlines()[1:]}
    assert lines["PLACE"][:4] == ["PLACE", "BENCH", "CLASS", "STATE"]
    assert lines["bench-b"][3] == "unreachable"
    assert lines["bench-a"][3:5] == ["live", ALICE]
    lab.lg(alice(lab, lab_env), "-p", "bench-a", "power", "off", check=True)
