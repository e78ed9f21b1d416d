"""How late the event loop runs: a task that sleeps a fixed interval and measures its lateness.

Every relayed frame, ping and HTTP answer waits for the loop; anything that holds it (a KDF on
the loop, a large synchronous parse) shows up here as lag before users see frozen screens.
``LagWindow`` is the pure part (the largest lag of a sliding window); ``monitoring`` runs the
sampler for the app's lifetime and writes the ``rsb_event_loop_lag*`` metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator

from broker.metrics import Metrics

SAMPLE_INTERVAL = 0.1
"""Seconds between checks: short enough to see a 0.1 s stall, cheap enough to forget."""

MAX_WINDOW = 60.0
"""The max gauge covers this many seconds, so a scrape every 15-60 s never misses a stall."""


class LagWindow:
    """The largest of the lags observed in the last ``window`` seconds.

    Keeps only samples that could still be the maximum (each is larger than every later one),
    so memory and time per sample stay small at any sampling rate.
    """

    def __init__(self, window: float) -> None:
        """Configure the window.

        Args:
            window: Seconds a sample counts for.

        Raises:
            ValueError: ``window`` is not positive.
        """
        if window <= 0:
            raise ValueError("window must be positive")
        self._window = window
        self._candidates: deque[tuple[float, float]] = deque()  # (at, lag), lags decreasing

    def observe(self, at: float, lag: float) -> float:
        """Add one sample and return the window's maximum.

        Args:
            at: When the sample was taken, in seconds on one monotonic clock.
            lag: The lateness measured, in seconds.

        Returns:
            The largest lag among the samples taken in ``(at - window, at]``.
        """
        while self._candidates and self._candidates[-1][1] <= lag:
            self._candidates.pop()
        self._candidates.append((at, lag))
        while self._candidates[0][0] <= at - self._window:
            self._candidates.popleft()
        return self._candidates[0][1]


async def _sample(metrics: Metrics, interval: float) -> None:
    loop = asyncio.get_running_loop()
    window = LagWindow(MAX_WINDOW)
    while True:
        before = loop.time()
        await asyncio.sleep(interval)
        now = loop.time()
        lag = max(0.0, now - before - interval)
        metrics.loop_lag.set(lag)
        metrics.loop_lag_max.set(window.observe(now, lag))
        metrics.loop_lag_histogram.observe(lag)


@contextlib.asynccontextmanager
async def monitoring(metrics: Metrics, interval: float = SAMPLE_INTERVAL) -> AsyncIterator[None]:
    """Sample the running loop's lag into ``metrics`` for as long as the context is open.

    Args:
        metrics: Where the lag gauges and histogram live.
        interval: Seconds between samples.
    """
    task = asyncio.create_task(_sample(metrics, interval), name="rsb-loop-lag")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
