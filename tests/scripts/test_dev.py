"""README command 1 as a user runs it: everything up, an order booked, Ctrl-C, up again; and
command 2's throwaway PostgreSQL."""

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import psycopg
import pytest
from sqlalchemy import make_url

from tests.factories import create_booking_json
from tests.service import ROOT, Service, listening


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    service = Service(tmp_path)
    yield service
    if service.process is not None and service.process.poll() is None:
        service.process.kill()


class TestDevCommand:
    def test_orders_survive_a_restart_and_ctrl_c_leaves_nothing_listening(
        self, service: Service
    ) -> None:
        """Up, book, Ctrl-C (every port closed), up again: the order is still there."""
        service.up()
        status, created = service.call("POST", "/v1/orders", "staff", create_booking_json())
        assert status == 201

        assert service.ctrl_c() == 0
        for port in (service.temporal_port, service.temporal_port + 1000, service.api_port):
            assert not listening(port), f"port {port} still listening after Ctrl-C"

        service.up()
        status, order = service.call("GET", f"/v1/orders/{created['order_id']}", "staff")
        assert status == 200
        assert order["stage"] == "dispatching"
        assert service.ctrl_c() == 0

    def test_prints_a_token_for_every_role(self, service: Service) -> None:
        """The start-up banner lists where things are and one token per role."""
        service.up()
        banner = service.output.read_text()
        for role in ("staff", "technician", "customer", "supervisor", "auditor", "admin"):
            assert f"  {role} " in banner
        assert f"http://127.0.0.1:{service.api_port}" in banner
        assert service.ctrl_c() == 0

    def test_what_it_writes_is_readable_by_its_user_only(self, service: Service) -> None:
        """The secret, the tokens and both databases hold credentials or personal data."""
        service.up()
        status, _ = service.call("POST", "/v1/orders", "staff", create_booking_json())
        assert status == 201
        written = ["auth-secret", "dev-tokens.json", "records.db", "temporal.db"]
        modes = {name: (service.data_dir / name).stat().st_mode & 0o777 for name in written}
        assert modes == dict.fromkeys(written, 0o600)
        assert service.ctrl_c() == 0

    def test_broken_policy_stops_start_up_naming_the_key(self, service: Service) -> None:
        """A typo in the policy file stops everything with a message naming the key."""
        policy = service.data_dir / "policy.toml"
        policy.write_text('[acceptance]\ntimeout = "72 hours"\n')
        service.env["REPAIRFLOW_POLICY_FILE"] = str(policy)
        result = subprocess.run(
            [sys.executable, "scripts/dev.py", "up"],
            cwd=ROOT,
            env=service.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode != 0
        assert "acceptance.timeout" in result.stderr
        assert "72 hours" in result.stderr
        assert not listening(service.temporal_port)

    def test_port_clash_is_refused_before_anything_starts(self, service: Service) -> None:
        """An API port that is the Web UI's (Temporal port + 1000) is named, nothing starts."""
        service.env["REPAIRFLOW_API_PORT"] = str(service.temporal_port + 1000)
        result = subprocess.run(
            [sys.executable, "scripts/dev.py", "up"],
            cwd=ROOT,
            env=service.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode != 0
        assert "two services on one port" in result.stderr
        assert "repairflow is running" not in result.stdout
        assert not listening(service.temporal_port)


def load_dev_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dev_script", ROOT / "scripts" / "dev.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestTestCommandPostgres:
    def test_throwaway_server_runs_during_the_tests_and_is_gone_after(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Command 2 starts PostgreSQL on loopback for the tests, tells them where it is, and
        leaves neither a listening port nor its files behind."""
        dev = load_dev_script()
        if dev.postgres_bin_dir() is None:
            if os.environ.get("CI_REQUIRE_POSTGRES") == "1":
                pytest.fail("no PostgreSQL server binaries, though CI_REQUIRE_POSTGRES=1")
            pytest.skip("no PostgreSQL server binaries here (command 2 installs them)")
        monkeypatch.delenv("REPAIRFLOW_TEST_POSTGRES_URL", raising=False)
        with dev.postgres_for_tests() as env:
            url = make_url(env["REPAIRFLOW_TEST_POSTGRES_URL"])
            assert env["CI_REQUIRE_POSTGRES"] == "1"
            assert url.host == "127.0.0.1"
            assert url.port is not None
            with psycopg.connect(env["REPAIRFLOW_TEST_POSTGRES_URL"]) as connection:
                row = connection.execute("SELECT current_database()").fetchone()
                assert row == ("repairflow",)
                sockets = connection.execute("SHOW unix_socket_directories").fetchone()
            assert sockets is not None
            workdir = Path(sockets[0])
            assert workdir.is_dir()
        assert not listening(url.port)
        assert not workdir.exists()

    def test_a_given_server_is_used_as_it_is(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A developer's own server in REPAIRFLOW_TEST_POSTGRES_URL is used, nothing started."""
        dev = load_dev_script()
        given = "postgresql://me@127.0.0.1:1/mine"
        monkeypatch.setenv("REPAIRFLOW_TEST_POSTGRES_URL", given)
        with dev.postgres_for_tests() as env:
            assert env == {"REPAIRFLOW_TEST_POSTGRES_URL": given, "CI_REQUIRE_POSTGRES": "1"}
