import io
import json
import logging

import structlog


def logged(output: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.getvalue().splitlines()]


class TestConfigureLogging:
    def test_structlog_and_stdlib_lines_look_alike(self, log_output: io.StringIO) -> None:
        """Our lines and uvicorn's come out as JSON with the same keys and the bound request id."""
        structlog.contextvars.bind_contextvars(request_id="req-1", order_id="RF261122-ABCDEF")
        structlog.get_logger("api").info("request", status=201)
        logging.getLogger("uvicorn.error").info("Started server process")
        ours, uvicorns = logged(log_output)
        for line in (ours, uvicorns):
            assert {"timestamp", "level", "event", "logger"} <= line.keys()
            assert line["request_id"] == "req-1"
            assert line["order_id"] == "RF261122-ABCDEF"
        assert ours["status"] == 201

    def test_temporal_lines_name_the_order(self, log_output: io.StringIO) -> None:
        """A line logged inside a workflow carries the order number as order_id."""
        logging.getLogger("temporalio.workflow").info(
            "offer sent",
            extra={"temporal_workflow": {"workflow_id": "RF261122-ABCDEF", "run_id": "r"}},
        )
        (line,) = logged(log_output)
        assert line["order_id"] == "RF261122-ABCDEF"
        assert "temporal_workflow" not in line
