"""Password hashing off the event loop: a small thread pool with a bounded queue.

Argon2id costs 0.3-0.8 s of CPU per call by design. Run on the event loop, one failed login
froze every live session for that long, and 40 logins at once for seconds (issue 11). The
pool's threads run it instead: argon2-cffi releases the GIL inside the hash, so the loop keeps
relaying frames meanwhile. The queue is bounded because a longer queue does not make logins
faster, it only makes each one wait longer and keeps its memory: past ``queue_limit`` waiting
jobs a call is refused at once with ``Overloaded`` (503 and Retry-After).

``workers=0`` runs the KDF inline on the loop, as the broker did before; it exists so the
login-burst benchmark can measure the before and the after in one run.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from broker.auth import passwords
from broker.errors import Overloaded

T = TypeVar("T")

OVERLOADED_RETRY_AFTER = 1.0
"""Seconds a refused caller is asked to wait: about the time the pool needs to drain a job."""


class KdfPool:
    """Runs ``passwords.hash_password`` and ``verify_password`` in a bounded thread pool.

    Jobs are counted from submission until their thread finishes, even if the caller stopped
    waiting: a job nobody awaits still holds a worker and its memory.
    """

    def __init__(self, params: passwords.HashParams, workers: int, queue_limit: int) -> None:
        """Start the pool (threads are started lazily by the executor).

        Args:
            params: Argon2id cost of new hashes and of the unknown-user dummy.
            workers: Threads computing hashes; 0 runs them inline on the caller's thread.
            queue_limit: Jobs allowed to wait for a free worker before calls are refused.

        Raises:
            ValueError: ``workers`` or ``queue_limit`` is negative.
        """
        if workers < 0 or queue_limit < 0:
            raise ValueError("workers and queue_limit must not be negative")
        self._params = params
        self._capacity = workers + queue_limit
        self._jobs = 0
        self._lock = threading.Lock()  # ``_jobs`` drops in the worker thread that finishes
        self._executor = (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rsb-kdf")
            if workers
            else None
        )

    @property
    def jobs(self) -> int:
        """KDF jobs submitted and not yet finished (running or waiting)."""
        return self._jobs

    @property
    def inline(self) -> bool:
        """Whether the KDF runs on the event loop (``workers=0``)."""
        return self._executor is None

    async def hash(self, pw: str) -> str:
        """Hash a new password (``passwords.hash_password``) in the pool.

        Raises:
            ValidationFailed: The password is empty, too long or not valid Unicode.
            Overloaded: ``queue_limit`` jobs are already waiting.
        """
        passwords.check_password_input(pw)
        return await self._run(lambda: passwords.hash_password(pw, self._params))

    async def verify(self, stored_hash: str | None, pw: str) -> bool:
        """Check a password (``passwords.verify_password``) in the pool.

        Raises:
            ValidationFailed: The password is empty, too long or not valid Unicode (checked on
                the loop first, so bad input never takes a place in the queue).
            Overloaded: ``queue_limit`` jobs are already waiting.
        """
        passwords.check_password_input(pw)
        return await self._run(lambda: passwords.verify_password(stored_hash, pw, self._params))

    async def _run(self, job: Callable[[], T]) -> T:
        if self._executor is None:
            return job()
        with self._lock:
            if self._jobs >= self._capacity:
                raise Overloaded(
                    "the server is checking too many passwords at once; try again in a moment",
                    retry_after=OVERLOADED_RETRY_AFTER,
                )
            self._jobs += 1
        try:
            future = self._executor.submit(job)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def _release(self, _future: object) -> None:
        with self._lock:
            self._jobs -= 1

    async def close(self) -> None:
        """Stop the pool: drop waiting jobs and wait, off the event loop, for running ones.

        Later calls fail (the executor refuses new jobs) rather than fall back to the loop.
        """
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
