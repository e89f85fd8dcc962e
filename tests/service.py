"""README command 1 run as a user runs it, on ports and a data directory of its own: the
service the command-line tests and the contract test drive from outside."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
START_SECONDS = 90


def free_port_pair() -> int:
    """A port p with p + 1000 free too: the dev server puts its Web UI there."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port < 64000 and not listening(port) and not listening(port + 1000):
            return port
    raise RuntimeError("no free port pair")


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


class Service:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.temporal_port = free_port_pair()
        self.api_port = free_port_pair()
        self.worker_metrics_port = free_port_pair()
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith("REPAIRFLOW_")
        } | {
            "REPAIRFLOW_DATA_DIR": str(data_dir),
            "REPAIRFLOW_TEMPORAL_ADDRESS": f"localhost:{self.temporal_port}",
            "REPAIRFLOW_API_PORT": str(self.api_port),
            "REPAIRFLOW_WORKER_METRICS_PORT": str(self.worker_metrics_port),
            "REPAIRFLOW_DATABASE_URL": f"sqlite:///{data_dir / 'records.db'}",
            "REPAIRFLOW_TASK_QUEUE": "dev-command-test",
        }
        self.process: subprocess.Popen[str] | None = None
        self.output = data_dir / "output.log"

    def up(self) -> None:
        already = self.output.read_text() if self.output.exists() else ""
        with self.output.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "scripts/dev.py", "up"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        deadline = time.monotonic() + START_SECONDS
        while "repairflow is running" not in self.output.read_text()[len(already) :]:
            assert self.process.poll() is None, self.output.read_text()
            assert time.monotonic() < deadline, self.output.read_text()
            time.sleep(0.5)

    def ctrl_c(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=60)

    def stop(self) -> None:
        """After a test, whatever state it left: Ctrl-C stops the services the command started
        too; a command that does not stop in time is killed."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.ctrl_c()
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def token(self, role: str) -> str:
        """The development token the command printed for the role."""
        tokens: dict[str, str] = json.loads((self.data_dir / "dev-tokens.json").read_text())
        return tokens[role]

    def call(self, method: str, path: str, role: str, body: Any = None) -> tuple[int, Any]:
        token = self.token(role)
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{self.url}{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as refused:  # a problem+json answer
            return refused.code, json.loads(refused.read())
