"""What the benchmark scripts share: the machine's load, clocks for the frames a pipeline makes, peak memory,
and running a measurement in a fresh process with this or another checkout of cam_hf."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: how busy the machine was while a benchmark ran."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class FrameClock:
    """A `callback_on_step_end` that timestamps every frame the pipeline makes, in wall time and in the CPU
    time of the thread that makes the frames (which other processes' load disturbs much less, and which leaves
    out the decoding thread's work)."""

    def __init__(self):
        self.start()

    def start(self) -> None:
        self.wall, self.cpu = [time.perf_counter()], [time.thread_time()]

    def __call__(self, pipe, index, timestep, callback_kwargs):
        self.wall.append(time.perf_counter())
        self.cpu.append(time.thread_time())
        return callback_kwargs

    def wall_ms(self) -> np.ndarray:
        """Wall ms of each frame: from the previous frame (or `start`) to this one."""
        return np.diff(self.wall) * 1000

    def cpu_ms(self) -> np.ndarray:
        return np.diff(self.cpu) * 1000


class PeakMemory:
    """Peak resident set size of this process while the block runs, sampled every 2 ms by a thread (torch's
    CPU allocations are invisible to tracemalloc, and `ru_maxrss` cannot be reset between measurements)."""

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.page = os.sysconf("SC_PAGE_SIZE")

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def __enter__(self):
        self.baseline = self.peak = self.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    def describe(self) -> str:
        growth = (self.peak - self.baseline) / 2**20
        return f"peak RSS {self.peak / 2**20:,.0f} MiB (+{growth:,.0f} MiB during the run)"


def run_script(script: str, args: list[str], checkout: str | None = None, timeout: float = 3600) -> dict:
    """Runs `script` with `args` in a fresh Python and returns the JSON object its last line of output holds.
    With `checkout` (a folder holding another version's `cam_hf`: a git worktree of an older commit, say), the
    child imports cam_hf from there instead of from this repository."""
    env = dict(os.environ, HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"))
    if checkout is not None:
        env["PYTHONPATH"] = os.pathsep.join([os.path.abspath(checkout), env.get("PYTHONPATH", "")])
    command = [sys.executable, script, *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{script} {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])
