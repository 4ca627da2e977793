"""An asyncio event loop in a thread of its own, for the simulated instruments.

The servers of all simulated instruments (and the control channel) share one
loop, so a bench is one thread however many instruments it has. Other threads
hand work to it with :meth:`EventLoopThread.run`; shutting down cancels what is
left, closes the loop and joins the thread, so nothing leaks past ``stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from interlock.errors import SimulatorError

T = TypeVar("T")

# Longest a bench operation may take on the loop (start, stop, drop...).
CALL_TIMEOUT = 10.0


class EventLoopThread:
    def __init__(self, name: str = "sim-bench") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._started = False

    def start(self) -> None:
        self._thread.start()
        self._started = True

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @property
    def in_loop(self) -> bool:
        return threading.current_thread() is self._thread

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT) -> T:
        """Run ``coroutine`` on the loop and wait for its result (from another thread)."""
        if self.in_loop:
            coroutine.close()
            raise SimulatorError("a bench operation was called from its own event loop")
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError as exc:
            future.cancel()
            raise SimulatorError(f"simulated bench did not respond within {timeout} s") from exc

    def stop(self) -> None:
        if not self._started:
            self.loop.close()
            return
        if self._thread.is_alive():
            with contextlib.suppress(SimulatorError):
                self.run(self._drain())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(CALL_TIMEOUT)
        if not self._thread.is_alive():
            self.loop.close()
        self._started = False

    async def _drain(self) -> None:
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.loop.shutdown_asyncgens()
        await self.loop.shutdown_default_executor()
