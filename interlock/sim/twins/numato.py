"""The Numato USB relay module twin: each line echoed, its answer (if any) on the next
line, ``\\n\\r`` line ends and a ``>`` prompt (the server adds it, as the dialect's read
terminator). A relay is read by the first character of its index only; anything it
does not know is echoed and ignored (it has no error reporting)."""

from __future__ import annotations

from collections.abc import Mapping

from interlock.sim.instrument import IdentityString, ScpiInstrument
from interlock.sim.switch import SwitchRelays

_RELAYS = {"USBRELAY8": 8, "USBRELAY16": 16}
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class NumatoRelays(ScpiInstrument):
    def __init__(  # type: ignore[no-untyped-def]
        self,
        name: str,
        identity: IdentityString,
        electrical,
        truth,
        *,
        relays: Mapping[int, str] | None = None,
        rng=None,
    ) -> None:
        super().__init__(name, identity, electrical, truth, rng=rng)
        count = _RELAYS.get(identity.model, 8)
        self.relays = SwitchRelays(name, count, relays or {}, electrical, truth)
        self.user_id = identity.serial or "00000000"

    def execute(self, line: str) -> str | None:
        command = line.strip("\r\n")
        with self.lock:
            answer = self._answer(command.split())
        return command + "\n\r" + (answer + "\n\r" if answer is not None else "")

    def _index(self, word: str) -> int | None:
        """The 1-based channel a relay index names: its first character only."""
        index = _DIGITS.find(word[:1])  # lowercase letters are not found: ignored
        return index + 1 if 0 <= index < self.relays.count else None

    def _answer(self, words: list[str]) -> str | None:
        count = self.relays.count
        if words == ["ver"]:
            return self.identity.firmware
        if words == ["id", "get"]:
            return self.user_id
        if len(words) == 3 and words[:2] == ["id", "set"] and len(words[2]) == 8:
            self.user_id = words[2]
        elif words == ["reset"]:
            for channel in sorted(self.relays.closed):
                self.relays.set(channel, False)
        elif words == ["relay", "readall"]:
            mask = sum(1 << (c - 1) for c in self.relays.closed)
            return f"{mask:0{count // 4}X}"
        elif len(words) == 3 and words[:2] == ["relay", "writeall"]:
            try:
                mask = int(words[2], 16)
            except ValueError:
                return None
            if len(words[2]) == count // 4:
                for channel in range(1, count + 1):
                    self.relays.set(channel, bool(mask >> (channel - 1) & 1))
        elif len(words) == 3 and words[0] == "relay" and words[1] in ("on", "off", "read"):
            channel = self._index(words[2])
            if channel is None:
                return None
            if words[1] == "read":
                return "on" if channel in self.relays.closed else "off"
            self.relays.set(channel, words[1] == "on")
        return None
