"""The two README commands.

    python3 scripts/dev.py up     set up, then run the Temporal dev server, worker and API
    python3 scripts/dev.py test   set up, then run the linters, type checks and the test suite
                                  (the records tests on SQLite and on a throwaway PostgreSQL)

Only the Python standard library is used until the project environment exists, so this runs
on a machine that has nothing but Python 3.11+.
"""

import base64
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
DATA = Path(os.environ.get("REPAIRFLOW_DATA_DIR", ROOT / "data")).resolve()
UV_VERSION = "0.13.8"  # the same as in the lock file, which keeps it in the environment
SEARCH_ATTRIBUTES = {
    "OrderStage": "Keyword",
    "OrderPriority": "Keyword",
    "OrderCategory": "Keyword",
    "OrderRegion": "Keyword",
    "TechnicianId": "Keyword",
    "SlaBreached": "Bool",
    "WritesStalled": "Bool",
}
DEV_ROLES = ("staff", "technician", "customer", "supervisor", "auditor", "admin")
STARTUP_SECONDS = 60
STOP_SECONDS = 15


def ensure_environment() -> Path:
    """Create .venv with the locked dependencies; a no-op when it is already in sync."""
    python = VENV / "bin" / "python"
    uv = VENV / "bin" / "uv"
    if not uv.exists():
        print("creating the project environment in .venv ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                f"uv=={UV_VERSION}",
            ],
            check=True,
        )
    env = os.environ | {"UV_PYTHON_DOWNLOADS": "never", "UV_PROJECT_ENVIRONMENT": str(VENV)}
    subprocess.run([str(uv), "sync", "--frozen", "--quiet"], cwd=ROOT, env=env, check=True)
    return python


def in_environment() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def reexec_in_environment(python: Path) -> None:
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


def run_tests(args: list[str]) -> int:
    bin_dir = VENV / "bin"
    checks = [
        [str(bin_dir / "ruff"), "check", "."],
        [str(bin_dir / "ruff"), "format", "--check", "."],
        [str(bin_dir / "mypy"), "."],
    ]
    for command in checks:
        print("$", Path(command[0]).name, *command[1:], flush=True)
        result = subprocess.run(command, cwd=ROOT)
        if result.returncode != 0:
            return result.returncode
    # A stop request must still stop the PostgreSQL server below: turn it into an exception.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    with postgres_for_tests() as postgres:
        pytest = [str(bin_dir / "python"), "-m", "pytest", *args]
        print("$", "pytest", *args, flush=True)
        return subprocess.run(pytest, cwd=ROOT, env=os.environ | postgres).returncode


# ---- command 2: a throwaway PostgreSQL for the records tests ---------------------------------

POSTGRES_URL_VARIABLE = "REPAIRFLOW_TEST_POSTGRES_URL"
POSTGRES_VERSIONS = Path("/usr/lib/postgresql")  # where Debian's packages put each version


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL server's bin directory (Debian's layout), if any."""
    found = [
        initdb.parent
        for initdb in POSTGRES_VERSIONS.glob("*/bin/initdb")
        if initdb.parent.parent.name.isdigit()
    ]
    return max(found, key=lambda bin_dir: int(bin_dir.parent.name), default=None)


def install_postgres() -> Path | None:
    """Debian's PostgreSQL server, installed when missing (needs root and apt-get)."""
    if (bin_dir := postgres_bin_dir()) is not None:
        return bin_dir
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    print("installing PostgreSQL from Debian's packages ...", flush=True)
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"]
    if subprocess.run(install, env=env).returncode != 0:
        # A fresh machine has no package lists yet.
        subprocess.run(["apt-get", "update", "-q"], env=env)
        subprocess.run(install, env=env)
    return postgres_bin_dir()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def postgres_for_tests() -> Iterator[dict[str, str]]:
    """A throwaway PostgreSQL cluster on loopback while the tests run: the variables that tell
    the tests where it is. The cluster lives in a temporary directory (unix sockets too) and is
    stopped and deleted afterwards, also when the tests fail or are interrupted. A URL already
    in REPAIRFLOW_TEST_POSTGRES_URL is used as it is. Without PostgreSQL (and no way to install
    it) the PostgreSQL tests are skipped, except in CI, where that is an error."""
    if url := os.environ.get(POSTGRES_URL_VARIABLE):
        yield {POSTGRES_URL_VARIABLE: url, "CI_REQUIRE_POSTGRES": "1"}
        return
    bin_dir = install_postgres()
    if bin_dir is None:
        message = "PostgreSQL is not installed and cannot be installed here (root and apt-get)"
        if os.environ.get("CI"):
            raise SystemExit(f"{message}: the records tests need it in CI")
        print(f"{message}; the PostgreSQL cases of the records tests will be skipped", flush=True)
        yield {}
        return
    workdir = Path(tempfile.mkdtemp(prefix="repairflow-pg-"))
    data, log = workdir / "data", workdir / "server.log"
    as_owner: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        owner = pwd.getpwnam("postgres")
        os.chown(workdir, owner.pw_uid, owner.pw_gid)
        as_owner = ["runuser", "-u", "postgres", "--"]
    pg_ctl = [*as_owner, str(bin_dir / "pg_ctl"), "-D", str(data)]
    started = False
    try:
        initdb = [*as_owner, str(bin_dir / "initdb"), "-D", str(data), "-U", "repairflow"]
        initdb += ["-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]
        # cwd: the server's user may not be allowed into the directory this runs from.
        subprocess.run(initdb, cwd=workdir, check=True, capture_output=True)
        for _ in range(3):  # another process may take the free port first
            port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={workdir}"
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            start = [*pg_ctl, "-l", str(log), "-o", options, "-w", "-t", "60", "start"]
            started = subprocess.run(start, cwd=workdir, capture_output=True).returncode == 0
            if started:
                break
        if not started:
            server_log = log.read_text()[-2000:] if log.exists() else "(no server log)"
            raise SystemExit(f"PostgreSQL did not start:\n{server_log}")
        createdb = [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port)]
        subprocess.run([*createdb, "-U", "repairflow", "repairflow"], check=True)
        url = f"postgresql://repairflow@127.0.0.1:{port}/repairflow"
        print(f"PostgreSQL {bin_dir.parent.name} for the records tests: {url}", flush=True)
        yield {POSTGRES_URL_VARIABLE: url, "CI_REQUIRE_POSTGRES": "1"}
    finally:
        if started:
            subprocess.run([*pg_ctl, "-m", "fast", "-w", "stop"], cwd=workdir, capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


# ---- command 1: the whole service as one supervised group -------------------------------


def dev_secret() -> str:
    """The development signing secret: from the environment, else kept in data/ across starts."""
    if secret := os.environ.get("REPAIRFLOW_AUTH_SECRET"):
        return secret
    path = DATA / "auth-secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def dev_payload_keys() -> str:
    """The development key ring of the payload codec: from the environment, else one key kept in
    data/ across starts (losing it makes every order in data/temporal.db unreadable)."""
    if keys := os.environ.get("REPAIRFLOW_PAYLOAD_KEYS"):
        return keys
    path = DATA / "payload-keys"
    if not path.exists():
        path.write_text(f"dev-1:{base64.b64encode(secrets.token_bytes(32)).decode()}\n")
    return path.read_text().strip()


def start(name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    print(f"starting {name}: {' '.join(command)}", flush=True)
    # Own process group: Ctrl-C reaches only this supervisor, which stops children in order.
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)


def wait_until(
    ready: Callable[[], bool], children: dict[str, subprocess.Popen[bytes]], what: str
) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        for name, child in children.items():
            if child.poll() is not None:
                raise SystemExit(f"{name} exited with status {child.returncode} while starting")
        if ready():
            return
        time.sleep(0.3)
    raise SystemExit(f"{what} was not ready after {STARTUP_SECONDS}s")


def worker_polls(describe_task_queue: list[str], since: datetime) -> bool:
    """A worker has polled the task queue since it was started (the server remembers old ones)."""
    result = subprocess.run(describe_task_queue, capture_output=True, text=True)
    if result.returncode != 0:
        return False
    pollers = json.loads(result.stdout).get("pollers") or []
    return any(datetime.fromisoformat(p["lastAccessTime"]) >= since for p in pollers)


def api_ready(url: str) -> bool:
    """Our API's readiness answer, not just anything listening on the port."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own loopback URL
            return bool(json.loads(response.read()).get("status") == "ready")
    except (urllib.error.URLError, OSError, ValueError):
        return False


def refuse_busy_ports(ports: dict[str, int]) -> None:
    """Say which port clashes before starting anything, rather than fail half-way."""
    if len(set(ports.values())) < len(ports):
        raise SystemExit(f"repairflow cannot start: two services on one port: {ports}")
    for name, port in ports.items():
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                raise SystemExit(f"repairflow cannot start: port {port} ({name}) is in use")


def stop_all(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for name, child in reversed(children.items()):
        if child.poll() is None:
            print(f"stopping {name} ...", flush=True)
            os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()


def dev_tokens(secret: str) -> dict[str, str]:
    from datetime import timedelta

    from core.tokens import mint_token

    claims = {
        "technician": {"technician_id": "T-DEV-1"},
        "customer": {"order_id": "RF000000-DEMO00"},
    }
    return {
        role: mint_token(
            secret, subject=f"dev-{role}", role=role, ttl=timedelta(days=30), **claims.get(role, {})
        )
        for role in DEV_ROLES
    }


def run_service() -> int:
    sys.path.insert(0, str(ROOT))
    from core.settings import load_settings
    from core.temporal import dev_server_args

    # What this command and the services it starts write (the secret, the tokens, the engine's
    # and the records' databases) hold personal data or credentials: readable by this user only.
    os.umask(0o077)
    DATA.mkdir(exist_ok=True)
    env = os.environ | {
        "REPAIRFLOW_AUTH_SECRET": dev_secret(),
        "REPAIRFLOW_PAYLOAD_KEYS": dev_payload_keys(),
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(env)
    settings = load_settings()  # a bad setting or policy stops everything before anything starts
    worker_metrics_port = settings.worker_metrics_port or settings.api_port + 1  # on here
    env["REPAIRFLOW_WORKER_METRICS_PORT"] = str(worker_metrics_port)
    temporal_port = settings.temporal_address.rsplit(":", 1)[-1]
    refuse_busy_ports(
        {
            "Temporal": int(temporal_port),
            "Temporal Web UI (Temporal port + 1000)": int(temporal_port) + 1000,
            "API": settings.api_port,
            "worker metrics": worker_metrics_port,
        }
    )
    bin_dir = VENV / "bin"
    server = [
        str(bin_dir / "temporal"),
        "server",
        "start-dev",
        "--db-filename",
        str(DATA / "temporal.db"),
        "--port",
        temporal_port,  # the Web UI listens on this port + 1000: 8233 by default
        "--namespace",
        settings.temporal_namespace,
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=2",
        "--log-level",
        "error",
        "--ui-disable-news-fetch",
        # The Web UI's remote codec is the API's. The dev UI has no sign-in and sends no token,
        # so it is refused (401) and shows the payloads encrypted.
        "--ui-codec-endpoint",
        f"http://{settings.api_host}:{settings.api_port}/v1/codec",
    ]
    for name, kind in SEARCH_ATTRIBUTES.items():
        server += ["--search-attribute", f"{name}={kind}"]
    server += dev_server_args()
    health = [
        str(bin_dir / "temporal"),
        "operator",
        "cluster",
        "health",
        "--address",
        settings.temporal_address,
    ]

    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def on_signal(signum: int, _: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        children["temporal dev server"] = start("temporal dev server", server, env)
        wait_until(
            lambda: subprocess.run(health, capture_output=True).returncode == 0,
            children,
            "temporal",
        )
        worker_started = datetime.now(UTC)
        children["worker"] = start("worker", [str(bin_dir / "python"), "worker.py"], env)
        pollers = [
            str(bin_dir / "temporal"),
            "task-queue",
            "describe",
            "--output",
            "json",
            "--address",
            settings.temporal_address,
            "--namespace",
            settings.temporal_namespace,
            "--task-queue",
            settings.task_queue,
        ]
        wait_until(lambda: worker_polls(pollers, worker_started), children, "the worker")
        children["api"] = start("api", [str(bin_dir / "python"), "-m", "api"], env)
        api = f"http://127.0.0.1:{settings.api_port}"
        wait_until(lambda: api_ready(f"{api}/readyz"), children, "the API")
        tokens = dev_tokens(env["REPAIRFLOW_AUTH_SECRET"])
        (DATA / "dev-tokens.json").write_text(json.dumps(tokens, indent=2))
        print(
            "\nrepairflow is running\n"
            f"  API            {api}   (OpenAPI docs: {api}/docs, metrics: {api}/metrics)\n"
            f"  worker metrics http://{settings.api_host}:{worker_metrics_port}/metrics\n"
            f"  Temporal       {settings.temporal_address}"
            f"   namespace {settings.temporal_namespace}\n"
            f"  Temporal UI    http://localhost:{int(temporal_port) + 1000}\n"
            f"  records store  {settings.database_url}\n"
            f"\ndevelopment tokens (30 days; also in {DATA / 'dev-tokens.json'}):",
            flush=True,
        )
        for role, token in tokens.items():
            print(f"  {role:<11} {token}")
        print(
            "  (the customer token above is scoped to a placeholder order; every booking's answer\n"
            "   carries a customer_token for its own order)\n\nCtrl-C stops everything.",
            flush=True,
        )
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    print(f"{name} exited with status {child.returncode}; stopping", flush=True)
                    return 1
            time.sleep(0.5)
        return 0
    finally:
        stop_all(children)


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command not in ("up", "test"):
        print(__doc__)
        return 2
    if not in_environment():
        reexec_in_environment(ensure_environment())
    return run_service() if command == "up" else run_tests(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
