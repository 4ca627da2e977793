"""A short, deterministic run written the way the controller writes one.

Two nets come up, a request is refused by the profile, VBUS draws too much
current, the controller faults and switches off, the operator acknowledges.
Used by the golden post-mortem and the CLI tests.
"""

from __future__ import annotations

from pathlib import Path

from interlock.journal import Journal

RUN_ID = "20260314T093000Z-a1b2c3"

BENCH_TOML = "[bench]\nname = 'sim-bench'\n"
PROFILE_TOML = "[nets.VBUS]\nmax_voltage = '25 V'\nmax_current = '500 mA'\n"


def write_config_files(directory: Path) -> dict[str, str]:
    """bench.toml and a profile in ``directory``; returns role -> relative path."""
    (directory / "profiles").mkdir(exist_ok=True)
    (directory / "bench.toml").write_text(BENCH_TOML)
    (directory / "profiles" / "mdb24.toml").write_text(PROFILE_TOML)
    return {"bench": "bench.toml", "profile": "profiles/mdb24.toml"}


def write_synthetic_run(journal: Journal, clock, files: dict[str, str]) -> None:
    def later(seconds: float) -> Journal:
        clock.advance(seconds)
        return journal

    # Before the run: connecting and checking identities.
    journal.state("disconnected", "safe", "connect")
    later(0.2).identity(
        "psu",
        expected="Keysight Technologies,E36312A,MY59001234",
        seen="Keysight Technologies,E36312A,MY59001234",
        ok=True,
    )

    # The operator's arm comes before the run id is set, as the controller does it.
    later(1.0).operator("olga", "arm", detail="typed confirmation")
    journal.begin_run(RUN_ID)
    later(0.01).config(
        files,
        limits={
            "VBUS": {"min_voltage": 0.0, "max_voltage": 25.0, "max_current": 0.5},
            "V3V3": {"max_voltage": 3.45, "max_current": 0.2},
        },
    )
    later(0.01).state("safe", "armed", "arm")

    for net, volts, amps, channel in (("VBUS", 24.0, 0.5, 1), ("V3V3", 3.3, 0.2, 2)):
        request = later(0.5).request(
            "alice", "pytest-plugin", "set", net=net, quantity="voltage", value=volts
        )
        later(0.002).verdict(True, request=request.seq)
        later(0.002).command_intent(
            "psu", f"VOLT {volts:g},(@{channel})\n", net=net, quantity="voltage", value=volts
        )
        later(0.05).readback(
            "psu",
            f"VOLT? (@{channel})",
            f"{volts:.3f}",
            net=net,
            quantity="voltage",
            value=volts,
            expected=volts,
            ok=True,
        )
        later(0.01).command_intent(
            "psu", f"CURR {amps:g},(@{channel})\n", net=net, quantity="current_limit", value=amps
        )
        later(0.01).command_intent(
            "psu", f"OUTP ON,(@{channel})\n", net=net, quantity="output", value=True
        )
    later(0.01).state("armed", "live", "energise")

    for vbus_amps in (0.21, 0.24, 0.31):
        later(0.25).measurement("VBUS", voltage=24.01, current=vbus_amps)
        journal.measurement("V3V3", voltage=3.301, current=0.05)

    request = later(0.3).request(
        "alice", "pytest-plugin", "set", net="VBUS", quantity="voltage", value=30.0
    )
    later(0.002).verdict(
        False,
        request=request.seq,
        rule="nets.VBUS.max_voltage",
        where="profiles/mdb24.toml: nets.VBUS.max_voltage",
        reason="30 V is above 25 V",
    )

    later(0.2).measurement("VBUS", voltage=23.2, current=0.62)
    later(0.001).fault("overcurrent", "VBUS drew 0.62 A, limit 0.5 A")
    for net, channel in (("VBUS", 1), ("V3V3", 2)):
        later(0.002).command_intent(
            "psu", f"OUTP OFF,(@{channel})\n", net=net, quantity="output", value=False
        )
    later(0.01).state("live", "fault", "trip")
    later(0.1).measurement("VBUS", voltage=0.4, current=0.0)
    journal.measurement("V3V3", voltage=0.1, current=0.0)
    later(5.0).operator("olga", "reset", detail="acknowledged: load shorted on DUT")
    later(0.01).state("fault", "safe", "reset")
    journal.end_run()
