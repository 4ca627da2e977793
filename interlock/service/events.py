"""Fan-out of the bench's events to every open stream.

The controller tells its listeners from whatever thread it is in (an API
thread, the monitor, the relay-board supervisor); each stream reads an
asyncio queue in the server's event loop. :class:`EventHub` bridges the two
with ``call_soon_threadsafe``. A stream that cannot keep up loses its oldest
events and is told so (``"event": "overflow"``): a slow viewer must never
slow the controller down.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from datetime import UTC, datetime
from typing import Any

QUEUE_SIZE = 1000


class EventHub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[asyncio.Queue[dict[str, Any]], asyncio.AbstractEventLoop] = {}
        self._seq = itertools.count(1)

    def publish(self, event: str, **details: Any) -> None:
        """Hand ``event`` to every stream; callable from any thread, never blocks."""
        item = {
            "event": event,
            "seq": next(self._seq),
            "wall": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "monotonic": time.monotonic(),
            **details,
        }
        with self._lock:
            targets = list(self._queues.items())
        for queue, loop in targets:
            try:
                loop.call_soon_threadsafe(_offer, queue, item)
            except RuntimeError:  # that loop is closed: its stream is gone
                self.unsubscribe(queue)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        """A queue of future events; call from the event loop that will read it."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        with self._lock:
            self._queues[queue] = asyncio.get_running_loop()
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        with self._lock:
            self._queues.pop(queue, None)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._queues)


def _offer(queue: asyncio.Queue[dict[str, Any]], item: dict[str, Any]) -> None:
    if queue.full():
        dropped = 0
        while queue.qsize() > QUEUE_SIZE // 2:
            queue.get_nowait()
            dropped += 1
        queue.put_nowait({"event": "overflow", "dropped": dropped})
    queue.put_nowait(item)
