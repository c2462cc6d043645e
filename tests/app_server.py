"""Run `examples/app.py` for the tests and the benchmark: a subprocess on a free localhost port, its output
in a log file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
APP = REPOSITORY / "examples" / "app.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class AppServer:
    """`examples/app.py *app_args`, started at once on a free localhost port; `wait_until_ready` waits for it
    to answer (it takes a while to import and load), `stop` ends it."""

    def __init__(self, log_path: Path, *app_args: str):
        self.log_path = log_path
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/"
        env = {
            **os.environ,
            "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(APP), "--port", str(port), *app_args],
                cwd=REPOSITORY,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until_ready(self, timeout: float = 300.0) -> None:
        """Raises `RuntimeError`, with the end of the log, if the app exits or does not answer in time."""
        import httpx

        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"examples/app.py exited with {self.process.returncode}:\n{self.log()[-3000:]}"
                )
            try:
                if httpx.get(self.url, timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"examples/app.py did not answer in {timeout:g} s:\n{self.log()[-3000:]}")
            time.sleep(0.5)

    def wait_for_log(self, text: str, timeout: float = 120.0) -> None:
        """Wait until `text` appears in the app's log; raises `TimeoutError` with the end of the log."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{text!r} is not in the app's log after {timeout:g} s:\n{self.log()[-3000:]}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def serve_app(log_path: Path, *app_args: str, startup_timeout: float = 300.0):
    """`AppServer` for the length of a `with` block, ready to answer when the block starts."""
    server = AppServer(log_path, *app_args)
    try:
        server.wait_until_ready(startup_timeout)
        yield server
    finally:
        server.stop()
