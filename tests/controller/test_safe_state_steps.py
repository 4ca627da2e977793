"""The safe state's power-off steps: in the profile's order, one step's supplies at once.

A step is one entry of the profile's ``power_off``: a net, or an array of nets
that go off together (consecutive steps of one supply alone share its
exchange: the supply executes a channel list in order); the wired nets the
profile does not name are one last step. The supplies of one step are sent
their off commands side by side; a step goes only once the one before it is
done.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from interlock.config import WiredChannel
from interlock.controller.safe_state import OffPlan, drive_safe, power_off_steps
from interlock.controller.side_by_side import SideBySide
from interlock.journal import Journal

NETS = [f"N{i}" for i in range(8)]


@st.composite
def wiring(draw):
    """Wired channels in power-off order, and the profile's steps (not every net named)."""
    nets = draw(st.lists(st.sampled_from(NETS), unique=True, min_size=1))
    named = draw(st.lists(st.sampled_from(nets), unique=True))
    steps, rest = [], list(named)
    while rest:
        size = draw(st.integers(1, len(rest)))
        steps.append(tuple(rest[:size]))
        rest = rest[size:]
    channels = {
        net: WiredChannel(net, draw(st.sampled_from("abc")), NETS.index(net) + 1) for net in nets
    }
    order = [channels[n] for n in named] + [channels[n] for n in nets if n not in named]
    return order, steps


@given(wiring())
def test_the_steps_keep_the_profiles_order_and_name_every_channel_once(drawn):
    channels, profile_steps = drawn
    steps = power_off_steps(channels, {"a": None, "b": None, "c": None}, profile_steps)
    flat = [
        (t.name, c, n)
        for step in steps
        for t in step
        for c, n in zip(t.channels, t.nets, strict=True)
    ]
    assert sorted(flat) == sorted((c.supply, c.channel, c.net) for c in channels)
    step_of = {n: i for i, step in enumerate(steps) for t in step for n in t.nets}
    profile_step = {n: i for i, step in enumerate(profile_steps) for n in step}
    for earlier, later in itertools.permutations(profile_step, 2):
        if profile_step[earlier] < profile_step[later]:
            # Never after a net of a later step; in one step only on one supply, in order.
            assert step_of[earlier] <= step_of[later]
            if step_of[earlier] == step_of[later] and len(steps[step_of[earlier]]) == 1:
                [target] = steps[step_of[earlier]]
                assert target.nets.index(earlier) < target.nets.index(later)
            elif step_of[earlier] == step_of[later]:
                raise AssertionError(f"{earlier} and {later} sent together across supplies")
    for step in steps:
        assert len({t.name for t in step}) == len(step)  # each supply once a step
    unnamed = {c.net for c in channels} - set(profile_step)
    if unnamed:
        assert {n for t in steps[-1] for n in t.nets} == unnamed


@dataclass
class Supply:
    """A supply that answers its off command only once ``barrier`` lets it."""

    name: str
    barrier: threading.Barrier
    log: list[str]
    on: set[int] = field(default_factory=set)

    def outputs_off(self, channels, **context):
        self.barrier.wait()
        self.log.append(self.name)
        return [False for _ in channels]

    def settings(self, channels):
        return [SimpleNamespace(output=False) for _ in channels]


class Board:
    name = "relays"

    def open_all(self, **context):
        pass

    def get_state(self):
        return SimpleNamespace(contacts=frozenset())


def plan_of(steps):
    return OffPlan(
        steps=steps,
        all_supplies=tuple({t.name for step in steps for t in step}),
        board=Board(),
        trusted=lambda name: True,
        identify=lambda psu: None,
        relays_of=lambda channels: frozenset(),
    )


def drive(tmp_path, plan, side_by_side):
    journal = Journal(tmp_path / "journal.sqlite", bench="test")
    try:
        return drive_safe(
            "test",
            plan,
            journal,
            stop_heartbeat=lambda why: None,
            state=lambda: "fault",
            side_by_side=side_by_side,
        )
    finally:
        journal.close()


def test_the_supplies_of_one_step_are_sent_their_off_commands_at_once(tmp_path):
    # Each supply answers only once the other has been sent its command too: one after
    # the other, the first would wait for the second for ever (here: the barrier's 5 s).
    log: list[str] = []
    barrier = threading.Barrier(2, timeout=5)
    a, b = Supply("a", barrier, log), Supply("b", barrier, log)
    channels = [WiredChannel("N1", "a", 1), WiredChannel("N2", "b", 1)]
    steps = power_off_steps(channels, {"a": a, "b": b}, [("N1", "N2")])
    pool = SideBySide("test-off", 1)
    try:
        report = drive(tmp_path, plan_of(steps), pool)
    finally:
        pool.close()
    assert sorted(log) == ["a", "b"]
    assert report.verified, report.unverified
    assert not barrier.broken


def test_steps_go_in_order_each_once_the_one_before_is_done(tmp_path):
    log: list[str] = []
    alone = threading.Barrier(1)
    a, b = Supply("a", alone, log), Supply("b", alone, log)
    # The profile orders N2 (on b) before N1 (on a), then N3 (on a).
    channels = [WiredChannel("N2", "b", 1), WiredChannel("N1", "a", 1), WiredChannel("N3", "a", 2)]
    steps = power_off_steps(channels, {"a": a, "b": b}, [("N2",), ("N1",), ("N3",)])
    assert [[(t.name, t.nets) for t in step] for step in steps] == [
        [("b", ("N2",))],
        [("a", ("N1", "N3"))],  # consecutive nets of one supply: one exchange, in order
    ]
    pool = SideBySide("test-off", 1)
    try:
        report = drive(tmp_path, plan_of(steps), pool)
    finally:
        pool.close()
    assert log == ["b", "a"]
    assert report.verified, report.unverified


def test_a_profile_says_which_nets_go_off_together(tmp_path):
    import pytest

    from interlock.config import load_profile
    from interlock.errors import ConfigError

    root = Path(__file__).resolve().parents[2]
    text = (root / "profiles" / "mdb24.toml").read_text(encoding="utf-8")
    assert 'power_off = ["MOTOR", "VBUS", "VLOGIC"]' in text
    path = tmp_path / "profile.toml"
    path.write_text(
        text.replace(
            'power_off = ["MOTOR", "VBUS", "VLOGIC"]', 'power_off = [["MOTOR", "VBUS"], "VLOGIC"]'
        ),
        encoding="utf-8",
    )
    profile = load_profile(path)
    assert profile.power_off_steps == (("MOTOR", "VBUS"), ("VLOGIC",))
    assert profile.power_off == ("MOTOR", "VBUS", "VLOGIC")
    assert load_profile(root / "profiles" / "mdb24.toml").power_off_steps == (
        ("MOTOR",),
        ("VBUS",),
        ("VLOGIC",),
    )
    for wrong in ('[[], "MOTOR", "VBUS", "VLOGIC"]', '[["MOTOR", 1], "VBUS", "VLOGIC"]',
                  '[["MOTOR", "VBUS"], "VLOGIC", "VLOGIC"]'):  # fmt: skip
        path.write_text(
            text.replace('power_off = ["MOTOR", "VBUS", "VLOGIC"]', f"power_off = {wrong}"),
            encoding="utf-8",
        )
        with pytest.raises(ConfigError) as error:
            load_profile(path)
        assert error.value.key == "sequencing.power_off"
        assert str(path) in str(error.value)
