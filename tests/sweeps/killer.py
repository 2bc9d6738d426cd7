"""A background thread that SIGKILLs one process whose command line starts with a prefix (a
Ray worker running a cell, a local pool's spawned worker), to test that sweeps survive it."""

import os
import signal
import threading
import time
from pathlib import Path


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def parent_of(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Killer(threading.Thread):
    """Kill the first process (other than this one) whose command line contains ``marker`` and,
    with ``children_only``, whose parent is this process; after ``delay`` seconds of it being seen."""

    def __init__(self, marker: str, children_only: bool = False, delay: float = 0.0, timeout: float = 600.0):
        super().__init__(daemon=True)
        self.marker, self.children_only, self.delay, self.timeout = marker, children_only, delay, timeout
        self.killed: int | None = None
        self.done = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.timeout
        while not self.done.is_set() and time.monotonic() < deadline:
            for entry in os.listdir("/proc"):
                if not entry.isdigit() or int(entry) == os.getpid():
                    continue
                pid = int(entry)
                if self.marker in command_line(pid) and (not self.children_only or parent_of(pid) == os.getpid()):
                    time.sleep(self.delay)
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        continue
                    self.killed = pid
                    return
            time.sleep(0.01)

    def stop(self):
        self.done.set()
        self.join(timeout=5)
