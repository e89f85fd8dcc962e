"""README command 1 as a user runs it: everything up, an order booked, Ctrl-C, up again; and
command 2's throwaway PostgreSQL."""

import importlib.util
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import make_url

from tests.factories import create_booking_json
from tests.service import ROOT, Service, listening


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    service = Service(tmp_path)
    yield service
    service.stop()


def samples(text: str) -> dict[tuple[str, str, str, str], float]:
    """Prometheus text parsed by prometheus_client's own parser: each sample by its name and
    its handler, method and status labels ("" where it has none), the le bucket left out."""
    found: dict[tuple[str, str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            key = (
                sample.name,
                labels.get("handler", ""),
                labels.get("method", ""),
                labels.get("status", ""),
            )
            found[key] = max(found.get(key, 0.0), sample.value)
    return found


class TestDevCommand:
    def test_orders_survive_a_restart_and_ctrl_c_leaves_nothing_listening(
        self, service: Service
    ) -> None:
        """Up, book, Ctrl-C (every port closed), up again: the order is still there."""
        service.up()
        status, created = service.call("POST", "/v1/orders", "staff", create_booking_json())
        assert status == 201

        assert service.ctrl_c() == 0
        ports = (
            service.temporal_port,
            service.temporal_port + 1000,
            service.api_port,
            service.worker_metrics_port,
        )
        for port in ports:
            assert not listening(port), f"port {port} still listening after Ctrl-C"

        service.up()
        status, order = service.call("GET", f"/v1/orders/{created['order_id']}", "staff")
        assert status == 200
        assert order["stage"] == "dispatching"
        assert service.ctrl_c() == 0

    def test_api_and_worker_metrics_parse_as_prometheus_text(self, service: Service) -> None:
        """An operator's Prometheus scrapes both endpoints command 1 prints."""
        service.up()
        worker_metrics = f"http://127.0.0.1:{service.worker_metrics_port}/metrics"
        assert worker_metrics in service.output.read_text()
        status, _ = service.call("POST", "/v1/orders", "staff", create_booking_json())
        assert status == 201
        status, _ = service.call("GET", "/v1/orders/RF261120-NOSUCH", "staff")
        assert status == 404

        def scrape(url: str) -> dict[tuple[str, str, str, str], float]:
            with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback
                assert answer.headers["Content-Type"].startswith("text/plain")
                return samples(answer.read().decode())

        def open_orders(api: dict[tuple[str, str, str, str], float]) -> float:
            return sum(v for (name, *_), v in api.items() if name == "repairflow_open_orders")

        deadline = time.monotonic() + 20  # the booking reaches the records store on its own
        while open_orders(api := scrape(f"{service.url}/metrics")) < 1:
            assert time.monotonic() < deadline, api
            time.sleep(0.2)
        assert api[("http_requests_total", "/v1/orders", "POST", "201")] >= 1
        assert api[("http_requests_total", "/v1/orders/{order_id}", "GET", "404")] >= 1
        assert ("http_request_duration_seconds_bucket", "/v1/orders", "POST", "") in api
        assert ("repairflow_failed_notifications", "", "", "") in api
        assert api[("repairflow_workflows_with_failing_task", "", "", "")] == 0

        with urllib.request.urlopen(worker_metrics, timeout=10) as answer:
            worker = samples(answer.read().decode())
        names = {name for name, *_ in worker}
        # The SDK's own: task latencies and the sticky cache, as Temporal's dashboards read them.
        assert any(name.startswith("temporal_workflow_task_execution_latency") for name in names)
        assert "temporal_sticky_cache_size" in names
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
