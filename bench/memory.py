"""Memory figures the benchmarks print, read from /proc (Linux): peak anonymous memory sampled in a thread.

Resident memory (VmRSS, VmHWM) also counts file-backed pages of memory-mapped files (the spectrogram cache, an
Annoy index), which the kernel can drop under pressure; anonymous memory (RssAnon) is the heap a step really holds.
"""

from __future__ import annotations

import os
import threading

SAMPLE_SECONDS = 0.05


def status_kib(field: str, pid: str = "self") -> int:
    """A field of /proc/PID/status in KiB (0 when the process has just ended or the field is absent)."""
    try:
        with open(f"/proc/{pid}/status") as stream:
            for line in stream:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def child_pids() -> list[str]:
    pid = os.getpid()
    with open(f"/proc/{pid}/task/{pid}/children") as stream:
        return stream.read().split()


class AnonymousPeak:
    """Samples RssAnon of this process and of its children every 50 ms until `finish()`."""

    def __init__(self) -> None:
        self.own_kib = status_kib("RssAnon")
        self.child_kib = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.stop.wait(SAMPLE_SECONDS):
            self.own_kib = max(self.own_kib, status_kib("RssAnon"))
            self.child_kib = max([self.child_kib, *(status_kib("RssAnon", pid) for pid in child_pids())])

    def finish(self) -> tuple[int, int]:
        """(peak KiB of this process, peak KiB of its largest child)."""
        self.stop.set()
        self.thread.join()
        return max(self.own_kib, status_kib("RssAnon")), self.child_kib
