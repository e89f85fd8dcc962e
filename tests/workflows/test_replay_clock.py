"""An order's commands must not depend on the value of workflow.now().

Seen under restarts (issue 12): after the worker was killed, a new worker ran an order's
next workflow task with the start time of the task before it (a timer of 2.877549 s where
the clock had 3 s left at the earlier task's start). The appointment clock's watcher
compared the deadline with that `now`, found it not yet passed and waited again; the replay,
which sees the task's recorded start time, found it passed and recorded the breach. Different
commands, so every later task of the order failed with a nondeterminism error, for good.

Since then a deadline is always waited out with a timer and a breach is recorded when that
timer fires, so a task replays the same commands whatever time it is given. Here every
workflow task of a recorded history is given the start time of the task before it, as that
worker did, and the history must still replay: those recorded with today's clock rules do;
one recorded with the earlier rules (orders in flight keep them) shows the fault.
"""

import asyncio
import base64
import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from core.temporal import converter
from worker import NONDETERMINISTIC, replay_files
from workflows.complaint import DEADLINE_TIMERS
from workflows.registry import WORKFLOWS
from workflows.repair_order import CLOCK_TIMERS

HISTORIES = Path(__file__).parent.parent / "histories"
TASK_STARTED = "EVENT_TYPE_WORKFLOW_TASK_STARTED"
# Recorded under worker restarts (tests/restart) with the earlier clock rules: its appointment
# clock breached. RF261202-19W0BP, -AHQ8NS and -H0GEN3 were recorded under restarts with today's
# rules, each with a task the worker's runner refused (see core/runner.py); RF261202-NEE1BJ
# under restarts with the re-check under the lock as well.
EARLIER_RULES = HISTORIES / "RF261202-3M6KE5.json"
# An order that restart wedged (before the fix): its recorded tasks no longer replay.
WEDGED = HISTORIES / "unreplayable" / "restart_stale_clock.json"


def with_stale_clock(history: dict[str, Any]) -> dict[str, Any]:
    """The history with each workflow task started when the task before it started."""
    stale = copy.deepcopy(history)
    previous = None
    for event in stale["events"]:
        if event["eventType"] == TASK_STARTED:
            event["eventTime"], previous = previous or event["eventTime"], event["eventTime"]
    return stale


def patches(history: dict[str, Any]) -> set[str]:
    """The patch ids the history's markers hold."""
    found = set()
    for event in history["events"]:
        details = event.get("markerRecordedEventAttributes", {}).get("details", {})
        for payload in details.get("patch-data", {}).get("payloads", []):
            found.add(json.loads(base64.b64decode(payload["data"]))["id"])
    return found


def current_rules(path: Path) -> bool:
    return bool(patches(json.loads(path.read_text())) & {CLOCK_TIMERS, DEADLINE_TIMERS})


async def replay(name: str, history: dict[str, Any]) -> Exception | None:
    replayer = Replayer(workflows=WORKFLOWS, data_converter=converter())
    result = await replayer.replay_workflow(
        WorkflowHistory.from_json(name, history), raise_on_replay_failure=False
    )
    return result.replay_failure


CURRENT = [path for path in sorted(HISTORIES.glob("*.json")) if current_rules(path)]


def test_histories_with_the_current_rules_are_recorded() -> None:
    assert len(CURRENT) >= 3, "record orders with the current clock rules (see the README)"


@pytest.mark.parametrize("path", CURRENT, ids=lambda path: path.stem)
async def test_a_task_given_an_earlier_time_replays_the_same_commands(path: Path) -> None:
    history = json.loads(await asyncio.to_thread(path.read_text))
    assert await replay(path.stem, history) is None
    stale = with_stale_clock(history)
    assert stale != history
    assert await replay(path.stem, stale) is None


async def test_with_the_earlier_rules_an_earlier_time_wedges_the_order() -> None:
    history = json.loads(await asyncio.to_thread(EARLIER_RULES.read_text))
    assert not current_rules(EARLIER_RULES)
    assert await replay(EARLIER_RULES.stem, history) is None
    failure = await replay(EARLIER_RULES.stem, with_stale_clock(history))
    assert failure is not None
    assert "Nondeterminism" in str(failure)


async def test_the_order_a_restart_wedged_ran_its_task_at_the_earlier_time() -> None:
    """The replay gate refuses the wedged order; given each task the time of the task before,
    as its first run had after the restart, the same history replays."""
    out = io.StringIO()
    assert await replay_files([WEDGED], out=out) == NONDETERMINISTIC
    assert "Nondeterminism" in out.getvalue()
    history = json.loads(await asyncio.to_thread(WEDGED.read_text))
    assert await replay(WEDGED.stem, with_stale_clock(history)) is None
