"""Progress of a long job over videos (generating, decoding, pseudo-labelling): a tqdm bar on a terminal; in a log
(stderr a file or a pipe: `> log`, nohup, a batch job's output) a line now and then and one at the end, since a bar
redrawn in place is kept there as one line of every redraw (8.8 kB for the embedded set's 160 videos)."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

from tqdm import tqdm

LOG_EVERY_S = 30.0  # in a log, seconds between two lines of a job still running


class Progress:
    """Counts a job's videos, shown as a bar on a terminal or as lines in a log; nothing where not `enabled`."""

    def __init__(
        self,
        total: int,
        desc: str,
        *,
        initial: int = 0,
        enabled: bool = True,
        every_s: float = LOG_EVERY_S,
        stream: TextIO | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        live = enabled and self.stream.isatty()
        self.bar = tqdm(total=total, initial=initial, unit="video", desc=desc, disable=not live, file=self.stream)
        self.logged = enabled and not live
        self.total, self.done, self.desc, self.every_s = total, initial, desc, every_s
        self.started = self.last = time.monotonic()
        self.ran = 0  # videos done here (not the `initial` an earlier run did)

    def update(self, n: int = 1) -> None:
        self.bar.update(n)
        self.done += n
        self.ran += n
        now = time.monotonic()
        if self.logged and self.done < self.total and now - self.last >= self.every_s:
            self._line(f"{self.done}/{self.total} videos, {self._rate(now)}")
            self.last = now

    def close(self) -> None:
        self.bar.close()
        if self.logged and self.ran:  # (a job an earlier run had done, or with nothing to do, says nothing)
            self.logged = False  # one end line
            now = time.monotonic()
            self._line(f"{self.done}/{self.total} videos in {now - self.started:.1f} s, {self._rate(now)}")

    def _rate(self, now: float) -> str:
        return f"{self.ran / max(now - self.started, 1e-9):.1f} videos/s"

    def _line(self, text: str) -> None:
        print(f"{self.desc}: {text}", file=self.stream, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
