"""The order's SLA clocks: started, paused, resumed, moved and stopped by the process, and
breached only when a deadline's timer fires.

Runs inside the order workflow (deterministic: workflow time and timers only).
"""

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.order import Clock, Order, SlaClock
    from models.policy import Duration, Policy

# The shortest timer a deadline is waited out with: a deadline is always a timer, even one
# already past, so that the commands never depend on the value of workflow.now().
SHORTEST_WAIT = timedelta(milliseconds=1)


async def sleep_until(moment: datetime) -> None:
    """A timer to the moment, even one already past: whether there is a timer must not
    depend on workflow.now()."""
    await workflow.sleep(max(moment - workflow.now(), SHORTEST_WAIT))


class Clocks:
    """The clocks of one order, kept in `order.sla`.

    `on_breach` is told of a breach, `on_stop` of a clock stopped (the order's search
    attributes follow both). Orders booked before breaches were decided on timers keep their
    old rule (`breach_on_timer` False)."""

    def __init__(
        self,
        order: Order,
        policy: Policy,
        *,
        breach_on_timer: bool,
        on_breach: Callable[[Clock], None],
        on_stop: Callable[[], None],
    ) -> None:
        self.order = order
        self.policy = policy
        self.breach_on_timer = breach_on_timer
        self._on_breach = on_breach
        self._on_stop = on_stop
        self._watching = False
        self._watchers: set[asyncio.Task[None]] = set()

    def deadline(self, duration: Duration, start: datetime | None = None) -> datetime:
        return self.policy.deadline(start or workflow.now(), duration)

    def watch_all(self) -> None:
        """Watch every clock from now on; those started before the workflow ran, too."""
        self._watching = True
        for clock in list(self.order.sla):
            self._watch_in_background(clock)

    def start(self, clock: Clock, duration: Duration, start: datetime | None = None) -> None:
        started = start or workflow.now()
        self.order.sla[clock] = SlaClock(
            started_at=started, deadline=self.deadline(duration, started)
        )
        if self._watching:
            self._watch_in_background(clock)

    def running(self, clock: Clock) -> SlaClock | None:
        state = self.order.sla.get(clock)
        return state if state is not None and state.stopped_at is None else None

    def move_deadline(self, clock: Clock, deadline: datetime) -> None:
        if self.running(clock):
            self._update(clock, deadline=deadline)

    def pause(self, clock: Clock) -> None:
        state = self.running(clock)
        if state is not None and state.paused_at is None:
            self._update(clock, paused_at=workflow.now())

    def resume(self, clock: Clock) -> None:
        """The time spent paused is added to the deadline."""
        state = self.running(clock)
        if state is not None and state.paused_at is not None:
            paused_for = workflow.now() - state.paused_at
            self._update(
                clock,
                paused_at=None,
                deadline=state.deadline + paused_for,
                paused_for=state.paused_for + paused_for,
            )

    def stop(self, clock: Clock) -> None:
        state = self.running(clock)
        if state is None:
            return
        late = (state.paused_at or workflow.now()) - state.deadline
        # The deadline's timer decides a breach: a clock stopped in the same moment as its
        # timer fired must be judged alike in every replay, whatever workflow.now() says.
        breached = state.breached or (not self.breach_on_timer and late > timedelta(0))
        paused = workflow.now() - state.paused_at if state.paused_at else timedelta(0)
        self._update(
            clock,
            stopped_at=workflow.now(),
            paused_at=None,
            paused_for=state.paused_for + paused,
            breached=breached,
            breached_by=late if breached and late > timedelta(0) else None,
        )
        self._on_stop()

    def stop_all(self) -> None:
        for clock in list(self.order.sla):
            self.stop(clock)

    def _update(self, clock: Clock, **changes: Any) -> None:
        self.order.sla[clock] = self.order.sla[clock].model_copy(update=changes)

    def _watch_in_background(self, clock: Clock) -> None:
        task = asyncio.create_task(self._watch(clock))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _watch(self, clock: Clock) -> None:
        """Record the breach when a running, unpaused clock passes its deadline.

        The breach is decided by the deadline's timer firing, an event in the history, never
        by comparing the deadline with workflow.now(): a workflow task can see a different
        now in its first run than in a replay (the engine's worker was seen to give an
        activation the time of an earlier task after a restart), and a decision taken on it
        then emits other commands on replay, which wedges the order."""
        while (state := self.running(clock)) is not None and not state.breached:
            remaining = state.deadline - workflow.now()
            if not self.breach_on_timer and state.paused_at is None and remaining <= timedelta(0):
                self._breach(clock)
                return

            def changed(seen: SlaClock = state) -> bool:
                return self.running(clock) != seen

            timeout = None  # a paused clock waits for a change only
            if state.paused_at is None:
                timeout = max(remaining, SHORTEST_WAIT) if self.breach_on_timer else remaining
            # Wake when the clock is stopped, paused, resumed or moved, or at its deadline.
            try:
                await workflow.wait_condition(changed, timeout=timeout)
            except TimeoutError:
                if self.breach_on_timer:
                    self._breach(clock)
                    return

    def _breach(self, clock: Clock) -> None:
        self._update(clock, breached=True)
        self._on_breach(clock)
