"""The event loop behind the SSH executor's synchronous API: one daemon thread per process.

asyncssh is asynchronous; Garrison's executors are not. Every synchronous
call submits a coroutine to this one loop and waits for it, so all the SSH
connections of a process (and the threads that share them) live on one loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")


class _Loop:
    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None
    _pid: int | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None or cls._pid != os.getpid():  # (re)start after a fork
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="garrison-ssh", daemon=True)
                thread.start()
                cls._loop, cls._pid = loop, os.getpid()
            return cls._loop


def call(coro: Coroutine[Any, Any, _T], timeout: float | None = None) -> _T:
    """Run coro on the shared loop and wait for its result (cancelled if the wait is interrupted)."""
    loop = _Loop.get()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        # Waiting here would block the very loop that has to run coro.
        coro.close()
        raise RuntimeError("SSHExecutor's synchronous API cannot be called from its own event loop")
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result(timeout)
    except BaseException:
        future.cancel()
        raise
