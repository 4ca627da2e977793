"""Hardware access for the real board (RP2040-class, MicroPython).

Thin on purpose: pins, serial bytes, ticks and the hardware watchdog, and no
decisions. The simulator replaces this module with its own shim of the same
shape (see rb_loop.run for the list of methods).

Wiring (change the pin numbers below to match the board):

- relay coil drivers: one output per relay, 1 = coil energised (closed);
- contact sense: one input per relay from the relay's auxiliary contact,
  pulled up; the contact pulls it low when the relay is closed;
- E-stop: a normally-closed loop to ground, pulled up. A pressed button or
  a broken wire both read high, so both count as "open" (fail safe).

An E-stop edge also opens every relay from an interrupt, without waiting for
the main loop; the main loop then trips and latches as usual. A hardware
interlock that cuts relay coil power from the E-stop loop directly is still
recommended: firmware is the second line, not the first.

Over USB, a host that stops reading can make stdout writes wait for the
CDC buffer; the loop then stalls (and the host watchdog fires late) until
the hardware watchdog resets the MCU. The E-stop interrupt is not affected.
A UART link (``UART`` below) drops bytes instead of waiting.
"""

import select
import sys
import time

import machine
import micropython

RELAY_PINS = (2, 3, 4, 5, 6, 7, 8, 9)
SENSE_PINS = (10, 11, 12, 13, 14, 15, 16, 17)
ESTOP_PIN = 18
# None: talk over USB stdio. Otherwise (uart id, tx pin, rx pin).
UART = None
BAUD = 115200
WATCHDOG_MS = 500
# The MCU watchdog: long enough for one slow loop, short enough that a hung
# loop opens the relays (by resetting the MCU) well within seconds.
HARDWARE_WDT_MS = 2000
SERIAL_FILE = "serial.txt"


class Board:
    def __init__(self):
        # value=0 at construction: relays open from the first instruction.
        self._relays = [machine.Pin(n, machine.Pin.OUT, value=0) for n in RELAY_PINS]
        self._sense = [machine.Pin(n, machine.Pin.IN, machine.Pin.PULL_UP) for n in SENSE_PINS]
        self._estop = machine.Pin(ESTOP_PIN, machine.Pin.IN, machine.Pin.PULL_UP)
        self._estop_edge = False
        self._estop.irq(trigger=machine.Pin.IRQ_RISING, handler=self._estop_irq)
        if UART is None:
            # Raw bytes from the host must never reach the REPL as Ctrl-C.
            micropython.kbd_intr(-1)
            self._uart = None
            self._poll = select.poll()
            self._poll.register(sys.stdin, select.POLLIN)
            self._out = sys.stdout.buffer
        else:
            uart_id, tx, rx = UART
            self._uart = machine.UART(
                uart_id, BAUD, tx=machine.Pin(tx), rx=machine.Pin(rx)
            )
        self._wdt = machine.WDT(timeout=HARDWARE_WDT_MS)

    def config(self):
        return {
            "relays": len(RELAY_PINS),
            "watchdog_ms": WATCHDOG_MS,
            "serial": self._serial_number(),
            "model": "RB%d" % len(RELAY_PINS),
        }

    def ticks_ms(self):
        return time.ticks_ms()

    def ticks_diff(self, a, b):
        return time.ticks_diff(a, b)

    def estop_open(self):
        # A pulse shorter than one loop pass (a bouncing contact, a wire that
        # breaks for a moment) must still latch: the interrupt remembers it.
        edge = self._estop_edge
        self._estop_edge = False
        return edge or self._estop.value() == 1

    def read_contacts(self):
        mask = 0
        for i in range(len(self._sense)):
            if self._sense[i].value() == 0:
                mask |= 1 << i
        return mask

    def write_relays(self, mask):
        # Open before close, so a change never passes through a state with
        # both the old and the new relays closed.
        for i in range(len(self._relays)):
            if not mask & (1 << i):
                self._relays[i].value(0)
        for i in range(len(self._relays)):
            if mask & (1 << i):
                self._relays[i].value(1)

    def read(self):
        if self._uart is not None:
            data = self._uart.read()
            return data or b""
        chunks = []
        while len(chunks) < 64 and self._poll.poll(0):
            chunks.append(sys.stdin.buffer.read(1))
        return b"".join(chunks)

    def write(self, data):
        if self._uart is not None:
            self._uart.write(data)
        else:
            self._out.write(data)

    def feed_wdt(self):
        self._wdt.feed()

    def idle(self):
        time.sleep_ms(1)

    def running(self):
        return True

    def _estop_irq(self, pin):
        self._estop_edge = True
        for relay in self._relays:
            relay.value(0)

    def _serial_number(self):
        try:
            with open(SERIAL_FILE) as f:
                serial = f.read().strip()
            if serial and " " not in serial:
                return serial
        except OSError:
            pass
        uid = machine.unique_id()
        return "RB%d-%s" % (len(RELAY_PINS), "".join("%02X" % b for b in uid))
