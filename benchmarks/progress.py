"""The progress line of a benchmark run, on stderr.

On a terminal one status line is rewritten in place (workload, phase, elapsed time);
otherwise one line per workload is printed, so logs stay readable.
"""

from __future__ import annotations

import shutil
import sys
import time


class Progress:
    """A single status line on stderr (rewritten in place on a terminal; one line per
    workload otherwise).

    Parameters
    ----------
    total : int
        How many workloads the run has.
    enabled : bool
        False: print nothing.
    stream : file, optional
        Where to write (default ``sys.stderr``).
    """

    def __init__(self, total: int, enabled: bool = True, stream=None):
        self.total, self.done_count = total, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self.current = ""

    def workload(self, name: str) -> None:
        """Say that the workload ``name`` starts."""
        self.done_count += 1
        self.current = name
        if self.enabled and not self.tty:
            print(f"[{self.done_count}/{self.total}] {name}", file=self.stream, flush=True)
        self.update("")

    def update(self, text: str) -> None:
        """Show what the current workload is doing (on a terminal only)."""
        if not self.tty:
            return
        elapsed = time.perf_counter() - self.start
        line = f"[{self.done_count}/{self.total} {elapsed:5.0f}s] {self.current}: {text}"
        cols = shutil.get_terminal_size((100, 20)).columns - 1
        self.stream.write("\r\x1b[K" + line[:cols])
        self.stream.flush()

    def finish(self) -> None:
        """Clear the status line."""
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
