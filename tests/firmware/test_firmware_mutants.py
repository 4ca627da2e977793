"""Deliberately broken firmware: the unit tests must catch every one.

Each mutant is one edit of a firmware source file (the original text must
occur exactly once, so a refactoring cannot turn a mutant into a no-op
unnoticed). The edited firmware is loaded as a :class:`FirmwareImage` and the
self-tests run against it under CPython; at least one must fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.sim.relay_board import _FIRMWARE_MODULES, FIRMWARE_DIR, FirmwareImage

SELFTEST = Path(__file__).with_name("firmware_selftest.py")

MUTANTS = {
    "closing not checked": ("rb_core", "        if mask:\n", "        if False:\n"),
    "no host watchdog": ("rb_core", "            self._trip(CAUSE_WDT)", "            pass"),
    "watchdog late": ("rb_core", "> self.watchdog_ms", "> self.watchdog_ms + 20"),
    "watchdog early": ("rb_core", "> self.watchdog_ms", ">= self.watchdog_ms"),
    "trip leaves relays closed": (
        "rb_core",
        "    def _trip(self, cause):\n        self._open_all()",
        "    def _trip(self, cause):\n        pass",
    ),
    "estop not latched": (
        "rb_core",
        "                self._trip(CAUSE_ESTOP)",
        "                self._open_all()",
    ),
    "reset during estop": (
        "rb_core",
        "    def reset(self):\n        if self.estop:",
        "    def reset(self):\n        if False:",
    ),
    "last cause wins": ("rb_core", "        if self.cause is None:\n            self.cause = cause",
                        "        if True:\n            self.cause = cause"),
    "welded contacts ignored": (
        "rb_core",
        "self._forbidden_hit(mask | self.stuck_closed(), self.forbidden)",
        "self._forbidden_hit(mask, self.forbidden)",
    ),
    "forbidden needs exact match": ("rb_core", "if mask & m == m:", "if mask == m:"),
    "forbid ignores present state": (
        "rb_core",
        "        if hit is not None:\n            raise Refused(FORBIDDEN, \"%X\" % hit)\n"
        "        self.forbidden = list(masks)",
        "        self.forbidden = list(masks)",
    ),
    "no settle time": ("rb_core", ">= self.settle_ms", ">= 0"),
    "crc not checked": ("rb_protocol", "if int(crc, 16) != crc16(line[:star]):", "if False:"),
    "wrong crc polynomial": ("rb_protocol", "(crc << 1) ^ 0x1021", "(crc << 1) ^ 0x8005"),
    "stale replay served": (
        "rb_protocol",
        " and core.version == self._last_version",
        "",
    ),
    "same seq executed again": (
        "rb_protocol",
        "            return seal(seq + \"|NAK \" + SEQ)\n",
        "",
    ),
    "damaged frames feed the watchdog": (
        "rb_protocol",
        "        if line is None:\n",
        "        self.core.host_frame(now)\n        if line is None:\n",
    ),
    "watchdog never armed": ("rb_protocol", "        core.host_frame(now)\n", ""),
    "loop does not open relays at start": (
        "rb_loop",
        "    # Open first, before the core exists and before anything can fail.\n"
        "    hal.write_relays(0)\n",
        "",
    ),
    "loop handles frames on stale inputs": (
        "rb_loop",
        "                now = hal.ticks_ms()\n"
        "                core.poll(now, hal.estop_open(), hal.read_contacts(), heard_by)\n",
        "                now = hal.ticks_ms()\n",
    ),
    "loop judges waiting frames as of now": (
        "rb_loop",
        "        heard_by = looked if data else now\n",
        "        heard_by = now\n",
    ),
    "loop judges an idle port as of the last look": (
        "rb_loop",
        "        heard_by = looked if data else now\n",
        "        heard_by = looked\n",
    ),
    "loop skips the hardware watchdog": ("rb_loop", "        hal.feed_wdt()\n", ""),
    "loop never drives the outputs": (
        "rb_loop",
        "    if core.commanded != written:\n        hal.write_relays(core.commanded)\n",
        "    pass\n",
    ),
    "bye leaves relays closed": (
        "rb_core",
        "        self._open_all()\n        self.armed = False",
        "        self.armed = False",
    ),
    "bye does not disarm": (
        "rb_core",
        "        self._open_all()\n        self.armed = False",
        "        self._open_all()",
    ),
    "lowercase hex accepted": ("rb_protocol", '_HEX = "0123456789ABCDEF"',
                               '_HEX = "0123456789ABCDEFabcdef"'),
}


def sources() -> dict[str, str]:
    return {
        name: (FIRMWARE_DIR / f"{name}.py").read_text(encoding="utf-8")
        for name in (*_FIRMWARE_MODULES, "main")
    }


def failures(code: dict) -> list[str]:
    namespace = FirmwareImage(code).run(SELFTEST.read_text(encoding="utf-8"), str(SELFTEST))
    failed = []
    for name in sorted(n for n in namespace if n.startswith("test_")):
        try:
            namespace[name]()
        except Exception:
            failed.append(name)
    return failed


def compiled(texts: dict[str, str]) -> dict:
    return {name: compile(text, f"{name}.py", "exec") for name, text in texts.items()}


def test_unmutated_firmware_passes() -> None:
    assert failures(compiled(sources())) == []


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_mutant_is_caught(mutant: str) -> None:
    module, original, replacement = MUTANTS[mutant]
    texts = sources()
    assert texts[module].count(original) == 1, f"{mutant}: the original text moved"
    texts[module] = texts[module].replace(original, replacement)
    assert failures(compiled(texts)), f"no self-test catches the mutant {mutant!r}"
