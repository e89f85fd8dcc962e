"""The order harness (tests/workflows/test_repair_order.py) serves every workflow test module."""

from tests.workflows.test_repair_order import harness

__all__ = ["harness"]
