"""A progress line for long work that is not a Keras fit (rendering, scanning, sweeps).

On a terminal it redraws one line at most twice a second; otherwise (logs, CI, a pipe)
it prints a line at every tenth of the work once it has run for QUIET_SECONDS, so logs
do not fill with redraws and short work prints nothing.
"""

import sys
import time

QUIET_SECONDS = 5.0


class Progress:
    """Counts `total` items of `what` on stderr.

    Args:
        total: int. Items in all.
        what: str. Shown before the count.
        stream: file. Defaults to sys.stderr.
    """

    def __init__(self, total: int, what: str, stream=None):
        self.total, self.what = max(1, int(total)), what
        self.stream = stream or sys.stderr
        self.terminal = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = self._last = time.monotonic()
        self._tenth = 0
        self.done = 0

    def update(self, done: int) -> None:
        """Records that `done` items are finished."""
        self.done = done
        now = time.monotonic()
        if self.terminal:
            if now - self._last >= 0.5 or done >= self.total:
                self._last = now
                self.stream.write(f"\r{self._line(now)}")
                self.stream.flush()
        elif done * 10 // self.total > self._tenth and now - self.start >= QUIET_SECONDS:
            self._tenth = done * 10 // self.total
            self.stream.write(self._line(now) + "\n")
            self.stream.flush()

    def _line(self, now):
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        return (
            f"{self.what}: {self.done}/{self.total} ({100 * self.done // self.total}%), "
            f"{elapsed:.0f}s, {left:.0f}s left"
        )

    def close(self) -> None:
        """Ends the line on a terminal."""
        if self.terminal and self.done:
            self.stream.write("\n")
            self.stream.flush()
