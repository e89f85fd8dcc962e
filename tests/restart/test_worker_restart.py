"""Orders in flight survive the worker being killed: a reduced form of the restart run (the
whole run: `python -m tests.restart.harness --runs 20`)."""

from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from tests.restart.harness import Plan, run_once


async def test_orders_survive_worker_kills(
    dev_server_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Killed while orders are being dispatched, and again just after the first is done."""
    plan = Plan(orders=6, kill_after=(2.5,), kill_after_first_completion=True, seed=1)
    report = await run_once(dev_server_env.client, plan, tmp_path)

    assert report.kills == len(plan.kill_after) + 1
    assert len(report.order_ids) == plan.orders
    assert set(report.stages.values()) == {"in_warranty"}, report.summary()
    assert not report.failing_tasks, report.summary()
    assert report.replay_status == 0, report.replay_output
    assert len(report.history_files) >= plan.orders
