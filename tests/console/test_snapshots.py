"""Snapshots of the main screen: safe, live, faulted (from fixed statuses, fixed size).

Update them with ``pytest tests/console --snapshot-update`` and look at the
SVGs in ``__snapshots__`` before committing them.
"""

from __future__ import annotations

from interlock.console import ConsoleApp
from tests.console import fixed_source

SIZE = (120, 40)


def _app(statuses, journal, role: str = "operator") -> ConsoleApp:
    return ConsoleApp(fixed_source.FixedSource(statuses, journal, role), journal_period=None)


def _settled(state: str):
    async def run_before(pilot) -> None:
        app = pilot.app
        for _ in range(100):
            if app.state == state and app.journal:
                break
            await pilot.pause(0.01)
        assert app.state == state
        await pilot.pause()

    return run_before


def test_safe(snap_compare):
    app = _app(fixed_source.safe(), fixed_source.JOURNAL[:1])
    assert snap_compare(app, terminal_size=SIZE, run_before=_settled("safe"))


def test_live(snap_compare):
    app = _app(fixed_source.live(), fixed_source.JOURNAL)
    assert snap_compare(app, terminal_size=SIZE, run_before=_settled("live"))


def test_faulted(snap_compare):
    app = _app(fixed_source.faulted(), fixed_source.JOURNAL + fixed_source.FAULT_LINES)
    assert snap_compare(app, terminal_size=SIZE, run_before=_settled("fault"))


def test_flight_bench_viewer(snap_compare, tmp_path):
    """A flight bench: the red banner, and a viewer's reasons beside the operator's actions."""
    bench = tmp_path / "bench.toml"
    text = (fixed_source.ROOT / "bench.toml").read_text(encoding="utf-8")
    text = text.replace('profile = "profiles/', f'profile = "{fixed_source.ROOT}/profiles/')
    text = text.replace('environment = "simulation"', 'environment = "flight"')
    text = text.replace('name = "sim-bench-01"', 'name = "qm-bench-02"')
    bench.write_text(text[: text.index("# --- the simulated DUT")], encoding="utf-8")
    statuses = fixed_source.safe()
    statuses[0].update(bench="qm-bench-02", environment="flight")
    statuses[0]["you"]["role"] = "viewer"
    source = fixed_source.FixedSource(statuses, fixed_source.JOURNAL[:1], "viewer", bench=bench)
    app = ConsoleApp(source, journal_period=None)
    assert snap_compare(app, terminal_size=SIZE, run_before=_settled("safe"))


def test_disconnected(snap_compare):
    """The service went away: said so, the last status dimmed, the stop still offered."""
    source = fixed_source.LostSource(fixed_source.live(), fixed_source.JOURNAL)
    app = ConsoleApp(source, journal_period=None)

    async def run_before(pilot) -> None:
        for _ in range(100):
            if app.status and not app.connected and app.journal:
                break
            await pilot.pause(0.01)
        assert not app.connected
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
