"""Progress output for logs: when stderr is not a terminal, tqdm's redrawn bars become plain, throttled lines.

tqdm redraws a bar by writing `\\r` + the bar; in a log file or a pipe that is one ever-growing line full of
carriage returns (and `ESC[A` for nested bars). `PlainLines` wraps stderr and turns each bar into a line at most
every `interval` seconds plus its final state, strips terminal escape codes, and passes other output through.
"""

from __future__ import annotations

import io
import re
import sys
import time
from collections.abc import Callable
from typing import TextIO

ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")  # CSI sequences: cursor moves, colours
LOG_INTERVAL_S = 10.0


class PlainLines(io.TextIOBase):
    """A text stream that writes progress redraws as plain lines, throttled, without escape codes.

    >>> out = io.StringIO()
    >>> lines = PlainLines(out, interval=10.0, clock=iter([0.0, 1.0, 2.0, 3.0]).__next__)
    >>> for text in ("\\rscore:   0%|", "\\rscore:  50%|", "\\rscore: 100%|", "\\n", "done\\n"):
    ...     _ = lines.write(text)
    >>> print(out.getvalue(), end="")
    score:   0%|
    score: 100%|
    done
    """

    def __init__(self, stream: TextIO, interval: float = LOG_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.interval = interval
        self.clock = clock
        self._redraw = False  # inside a bar that has not ended with a newline
        self._line = ""  # the bar's latest state
        self._emitted = ""  # the bar state written last
        self._last = float("-inf")
        self._bol = True  # at the beginning of a line: a further newline would only print a blank line

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"

    def fileno(self) -> int:
        return self.stream.fileno()

    def write(self, text: str) -> int:
        if self._redraw and not text.startswith(("\r", "\n")):
            self._end_bar()  # other output (a log line) after a bar: the bar's last state first
        for token in re.split(r"(\r|\n)", ESCAPE.sub("", text)):
            if token == "\r":
                self._redraw, self._line = True, ""
            elif token == "\n":
                if self._redraw:
                    self._end_bar()
                elif not self._bol:  # nested bars move the cursor with newlines: no blank lines in logs
                    self.stream.write("\n")
                    self._bol = True
            elif token:
                if self._redraw:
                    self._line += token
                else:
                    self.stream.write(token)
                    self._bol = False
        if self._redraw and self._line.strip():
            now = self.clock()
            if now - self._last >= self.interval:
                self._emit(now)
        return len(text)

    def _emit(self, now: float) -> None:
        line = self._line.rstrip()
        if line and line != self._emitted:
            self.stream.write(("" if self._bol else "\n") + line + "\n")
            self._emitted, self._last, self._bol = line, now, True

    def _end_bar(self) -> None:
        if self._line.strip():
            self._emit(self.clock())
        self._redraw, self._line, self._emitted = False, "", ""

    def flush(self) -> None:
        self.stream.flush()


def plain_progress_when_not_a_terminal() -> None:
    """Install `PlainLines` as sys.stderr unless stderr is a terminal (bars stay bars there)."""
    if not sys.stderr.isatty() and not isinstance(sys.stderr, PlainLines):
        sys.stderr = PlainLines(sys.stderr)  # type: ignore[assignment]
