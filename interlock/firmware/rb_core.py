"""Relay board core: the safety rules, with no hardware and no I/O.

Everything the board decides lives here, so it can be tested on any Python
(CPython and MicroPython alike) by feeding it times and input levels:

- all relays open at power-up (``commanded`` starts at 0);
- an open E-stop loop opens every relay in the same poll and latches ESTOP;
- a silent host (no valid frame for ``watchdog_ms``) opens every relay and
  latches WDT; a host that leaves on purpose (``release``) opens every relay
  and disarms the watchdog until its next frame;
- while a cause is latched or the E-stop is open, nothing may close;
- a set that would close a forbidden combination is refused and changes
  nothing;
- a reset is refused while the E-stop loop is open and never closes a relay;
- a relay whose contact disagrees with its command for longer than the
  settle time is reported as a mismatch.

Relay masks are integers: bit 0 is channel 1. Times are ticks in ms from
the HAL; differences go through the injected ``ticks_diff`` so that the
MicroPython tick counter may wrap.

This file must stay valid MicroPython: no dataclasses, typing or f-strings.
"""

CAUSE_WDT = "WDT"
CAUSE_ESTOP = "ESTOP"

# NAK reasons raised by this module (the protocol adds CRC, SEQ, UNKNOWN).
BADARG = "BADARG"
FORBIDDEN = "FORBIDDEN"
TRIPPED = "TRIPPED"
ESTOP_ACTIVE = "ESTOP_ACTIVE"

# Masks travel as at most 4 hex digits.
MAX_RELAYS = 16
MAX_FORBIDDEN = 16
# Below 50 ms a busy host would trip on scheduling jitter; above 5 s a dead
# host would leave relays closed for too long to call it a watchdog.
WATCHDOG_MIN_MS = 50
WATCHDOG_MAX_MS = 5000
# An auxiliary contact needs a few ms to follow its coil; disagreement
# shorter than this is the relay moving, not a fault.
SETTLE_MS = 20

# Event kinds queued for the protocol to send unsolicited.
EVT_BOOT = "BOOT"
EVT_TRIP = "TRIP"
EVT_MISMATCH = "MISMATCH"
EVT_ESTOP_CLEAR = "ESTOP_CLEAR"


class Refused(Exception):
    """A command the rules refuse. args: (reason, detail)."""


def _plain_diff(a, b):
    return a - b


class Interlock:
    def __init__(self, relays=8, watchdog_ms=500, ticks_diff=None, settle_ms=SETTLE_MS):
        if not _is_int(relays) or relays < 1 or relays > MAX_RELAYS:
            raise ValueError("relays must be 1..%d, got %r" % (MAX_RELAYS, relays))
        check_watchdog_ms(watchdog_ms)
        self.relays = relays
        self.all_mask = (1 << relays) - 1
        self.watchdog_ms = watchdog_ms
        self.settle_ms = settle_ms
        self._diff = ticks_diff or _plain_diff
        self.commanded = 0
        self.contacts = 0
        self.mismatch = 0
        self.cause = None
        self.estop = False
        self.forbidden = []
        # The host watchdog arms with the first valid frame: a board that has
        # never heard from a host has nothing to protect the bench from yet.
        self.armed = False
        self.last_host = 0
        # Bumped on every change a state reply would show; lets the protocol
        # tell whether a cached reply still describes the board.
        self.version = 0
        self._disagree_since = [None] * relays
        self.events = [(EVT_BOOT, "")]

    # -- inputs, called by the main loop ------------------------------------

    def poll(self, now, estop_open, contacts, heard_by=None):
        """Apply the inputs seen at tick ``now``. Opening comes first.

        ``heard_by``: the tick as of which the host is judged (default ``now``):
        the loop passes the tick it last looked at the port when frames wait
        there, which may have come in at any moment since."""
        if estop_open:
            if not self.estop:
                self.estop = True
                self.version += 1
                self._trip(CAUSE_ESTOP)
            elif self.commanded:
                # Unreachable by the rules; kept so no path can leave a
                # relay closed while the loop is open.
                self._open_all()
        elif self.estop:
            self.estop = False
            self.version += 1
            self.events.append((EVT_ESTOP_CLEAR, ""))
        if (
            self.armed
            and self.cause is None
            and self._diff(now if heard_by is None else heard_by, self.last_host)
            > self.watchdog_ms
        ):
            self._trip(CAUSE_WDT)
        contacts = contacts & self.all_mask
        if contacts != self.contacts:
            self.contacts = contacts
            self.version += 1
        self._update_mismatch(now)

    def host_frame(self, now):
        """A valid frame arrived: the host is alive."""
        self.armed = True
        self.last_host = now

    # -- commands ------------------------------------------------------------

    def set_relays(self, mask):
        if mask < 0 or mask > self.all_mask:
            raise Refused(BADARG, "mask")
        if mask:
            # Opening is always allowed; only closing is checked.
            if self.estop:
                raise Refused(ESTOP_ACTIVE, "")
            if self.cause is not None:
                raise Refused(TRIPPED, self.cause)
            hit = self._forbidden_hit(mask | self.stuck_closed(), self.forbidden)
            if hit is not None:
                raise Refused(FORBIDDEN, "%X" % hit)
        if mask != self.commanded:
            self.commanded = mask
            self.version += 1

    def reset(self):
        if self.estop:
            raise Refused(ESTOP_ACTIVE, "")
        if self.cause is not None:
            self.cause = None
            self.version += 1
        # Relays stay as they are: open, since a trip opened them and
        # nothing could close them while it was latched.

    def load_forbidden(self, masks):
        if len(masks) > MAX_FORBIDDEN:
            raise Refused(BADARG, "too many")
        for m in masks:
            if m <= 0 or m > self.all_mask:
                raise Refused(BADARG, "mask")
        # A table the present state already violates would be a lie about
        # the bench; the host must open the relays first.
        hit = self._forbidden_hit(self.commanded | self.stuck_closed(), masks)
        if hit is not None:
            raise Refused(FORBIDDEN, "%X" % hit)
        self.forbidden = list(masks)
        self.version += 1

    def release(self):
        """The host leaves on purpose: every relay opens, and the watchdog
        waits for the next frame (which re-arms it) instead of latching WDT.
        A cause already latched stays latched."""
        self._open_all()
        self.armed = False

    def set_watchdog(self, ms):
        try:
            check_watchdog_ms(ms)
        except ValueError:
            raise Refused(BADARG, "range") from None
        if ms != self.watchdog_ms:
            self.watchdog_ms = ms
            self.version += 1

    # -- helpers ---------------------------------------------------------------

    def stuck_closed(self):
        """Contacts sensed closed although commanded open (welded)."""
        return self.contacts & ~self.commanded & self.all_mask

    def take_events(self):
        events = self.events
        self.events = []
        return events

    def _forbidden_hit(self, mask, table):
        for m in table:
            if mask & m == m:
                return m
        return None

    def _open_all(self):
        if self.commanded:
            self.commanded = 0
            self.version += 1

    def _trip(self, cause):
        self._open_all()
        # The first cause stays latched: it is the one that explains the event.
        if self.cause is None:
            self.cause = cause
            self.version += 1
            self.events.append((EVT_TRIP, cause))

    def _update_mismatch(self, now):
        disagree = self.commanded ^ self.contacts
        mismatch = 0
        for i in range(self.relays):
            bit = 1 << i
            if disagree & bit:
                since = self._disagree_since[i]
                if since is None:
                    self._disagree_since[i] = now
                elif self._diff(now, since) >= self.settle_ms:
                    mismatch |= bit
            else:
                self._disagree_since[i] = None
        if mismatch != self.mismatch:
            self.mismatch = mismatch
            self.version += 1
            self.events.append((EVT_MISMATCH, "%X" % mismatch))


def check_watchdog_ms(ms):
    if not _is_int(ms) or ms < WATCHDOG_MIN_MS or ms > WATCHDOG_MAX_MS:
        raise ValueError(
            "watchdog must be %d..%d ms, got %r" % (WATCHDOG_MIN_MS, WATCHDOG_MAX_MS, ms)
        )


def _is_int(value):
    # bool is an int subclass on both Pythons; True is not a relay count.
    return isinstance(value, int) and not isinstance(value, bool)
