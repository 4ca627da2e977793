"""Relay board main loop: the only place that moves data between HAL and logic.

``run(hal)`` is the firmware. It reads what waits at the port, polls the
inputs, lets the core decide, drives the relay outputs, answers the host and
feeds the MCU's hardware watchdog, in that order, forever (or until
``hal.running()`` says stop, which only the simulator does). The hardware
watchdog is fed here and nowhere else, so a hung or crashed loop resets the
MCU, and a reset opens every relay.

The HAL object must provide: ``config()`` (dict with relays, watchdog_ms,
serial, model), ``ticks_ms()``, ``ticks_diff(a, b)``, ``estop_open()`` (true
if the loop is open now or was at any moment since the previous call),
``read_contacts()`` (mask), ``write_relays(mask)``, ``read()`` (bytes, never
blocks), ``write(data)``, ``feed_wdt()``, ``idle()`` and ``running()``.

This file must stay valid MicroPython.
"""

import rb_core
import rb_protocol


def run(hal):
    cfg = hal.config()
    # Open first, before the core exists and before anything can fail.
    hal.write_relays(0)
    core = rb_core.Interlock(cfg["relays"], cfg["watchdog_ms"], hal.ticks_diff)
    proto = rb_protocol.Protocol(core, cfg["serial"], cfg["model"])
    reader = rb_protocol.LineReader()
    written = 0
    looked = hal.ticks_ms()
    while hal.running():
        now = hal.ticks_ms()
        data = hal.read()
        # Frames read now came in at any moment since the port was last looked
        # at: the host is judged as of then, so a pass held up (a busy board)
        # does not count frames that came in time as missing. A pass that finds
        # nothing waiting judges the host as of now.
        heard_by = looked if data else now
        looked = now
        core.poll(now, hal.estop_open(), hal.read_contacts(), heard_by)
        written = _drive(hal, core, written)
        _send_events(hal, proto)
        if data:
            for line in reader.feed(data):
                # Inputs again before every frame: a set must never act on
                # an E-stop state older than the frame itself.
                now = hal.ticks_ms()
                core.poll(now, hal.estop_open(), hal.read_contacts(), heard_by)
                written = _drive(hal, core, written)
                reply = proto.handle(line, now)
                written = _drive(hal, core, written)
                if reply is not None:
                    hal.write(reply)
            _send_events(hal, proto)
        hal.feed_wdt()
        hal.idle()


def _drive(hal, core, written):
    # Outputs follow the core before anything is said about them.
    if core.commanded != written:
        hal.write_relays(core.commanded)
    return core.commanded


def _send_events(hal, proto):
    for line in proto.event_lines():
        hal.write(line)
