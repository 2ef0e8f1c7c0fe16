"""The one clock everything asks for time, so tests can move it without sleeping."""

import time


class Clock:
    """Wall time for records people read; monotonic time for every duration."""

    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock(Clock):
    """A clock that only moves when told to (for tests of timeouts and limits)."""

    def __init__(self, wall_s: float = 1_700_000_000.0, monotonic_s: float = 1000.0) -> None:
        self._wall_s = wall_s
        self._monotonic_s = monotonic_s

    def wall(self) -> float:
        return self._wall_s

    def monotonic(self) -> float:
        return self._monotonic_s

    def advance(self, seconds: float) -> None:
        self._wall_s += seconds
        self._monotonic_s += seconds


CLOCK = Clock()
