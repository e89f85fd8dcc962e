"""The facts the quality figures are computed from (core/kpis.py), kept on each order's
read-model row as its events are written (activities/records.py), and derived the same way from
the event log for orders written before them (migration 0004).

Most facts follow from the events alone: the first response is the order's first move to
`scheduled` (an offer accepted or an assignment), the check-in its move to `on_site` on arrival,
the work done its last move to `awaiting_acceptance`. The SLA clocks come from the workflow's
own clocks, which the events do not fully show (pauses); an order written before the clocks were
kept gets what its events show: the response and arrival clocks, and every breach.
"""

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from models.order import Clock, OrderEvent, OrderSnapshot, SlaClock, Stage
from models.records import ComplaintRow, OrderRow

SURVEY = re.compile(r"attitude (\d), quality (\d), result (\d), speed (\d)")
ARRIVED = "arrived"  # the reason a check-in gives for moving on site
DEEMED = "deemed accepted"  # how a deemed acceptance's move to in_warranty begins
HOUR = timedelta(hours=1)


def from_event(facts: Mapping[str, Any], action: str, detail: str, at: datetime) -> dict[str, Any]:
    """The facts one event changes, given the order's facts before it (a mapping of the
    orders row's columns)."""
    if action == f"stage:{Stage.SCHEDULED}" and facts.get("first_response_at") is None:
        return {"first_response_at": at}
    if action == f"stage:{Stage.ON_SITE}" and detail == ARRIVED:
        return {"checked_in_at": facts.get("checked_in_at") or at, "visits": _visits(facts) + 1}
    if action == f"stage:{Stage.AWAITING_ACCEPTANCE}":
        return {"completed_at": at}
    if action == f"stage:{Stage.IN_WARRANTY}":
        return {"acceptance_deemed": detail.startswith(DEEMED)}
    if action == f"stage:{Stage.CLOSED}":
        return {"closed_at": at}
    if action == f"stage:{Stage.CANCELLED}":
        return {"cancelled_at": at}
    if action == "survey answered" and (scores := SURVEY.fullmatch(detail)):
        attitude, quality, result, speed = (int(score) for score in scores.groups())
        return {
            "survey_attitude": attitude,
            "survey_quality": quality,
            "survey_result": result,
            "survey_speed": speed,
        }
    return {}


def _visits(facts: Mapping[str, Any]) -> int:
    visits: int = facts.get("visits") or 0
    return visits


def durations(facts: Mapping[str, Any]) -> dict[str, float | None]:
    """Hours from booking to each milestone; the work done counts once it is accepted."""
    booked_at: datetime = facts["booked_at"]
    accepted_at = facts.get("accepted_at")

    def hours(at: datetime | None) -> float | None:
        return (at - booked_at) / HOUR if at is not None else None

    return {
        "response_hours": hours(facts.get("first_response_at")),
        "arrival_hours": hours(facts.get("checked_in_at")),
        "resolution_hours": hours(facts.get("completed_at")) if accepted_at else None,
        "repair_hours": hours(accepted_at),
    }


def calendar(booked_on: date) -> dict[str, date]:
    """The day, week (its Monday) and month (its first) the reports group a booking by."""
    return {
        "booked_on": booked_on,
        "booked_week": booked_on - timedelta(days=booked_on.weekday()),
        "booked_month": booked_on.replace(day=1),
    }


def clock_facts(sla: Mapping[Clock, SlaClock]) -> dict[str, dict[str, Any]]:
    """The workflow's clocks as the read model keeps them (JSON)."""
    return {
        str(clock): {
            "started_at": state.started_at.isoformat(),
            "deadline": state.deadline.isoformat(),
            "paused_hours": state.paused_for / HOUR,
            "stopped_at": state.stopped_at.isoformat() if state.stopped_at else None,
            "breached": state.breached,
        }
        for clock, state in sla.items()
    }


def breaches(clocks: Mapping[str, Mapping[str, Any]]) -> dict[str, bool]:
    """Each clock's breach as the orders row's own column (`response_breached`, ...)."""
    return {f"{clock}_breached": bool(clocks.get(clock, {}).get("breached")) for clock in Clock}


def clocks_from_event(
    clocks: dict[str, dict[str, Any]], booked_at: datetime, action: str, detail: str, at: datetime
) -> dict[str, dict[str, Any]]:
    """For an order written before the clocks were kept: what one event shows of them."""
    clocks = {clock: dict(state) for clock, state in clocks.items()}

    def clock(name: Clock, started_at: datetime | None = None) -> dict[str, Any]:
        return clocks.setdefault(
            str(name),
            {
                "started_at": started_at.isoformat() if started_at else None,
                "deadline": None,
                "paused_hours": 0.0,
                "stopped_at": None,
                "breached": False,
            },
        )

    if action == "booked":
        clock(Clock.RESPONSE, booked_at)
        clock(Clock.ARRIVAL, booked_at)
    elif action == f"stage:{Stage.SCHEDULED}":
        response = clock(Clock.RESPONSE, booked_at)
        response["stopped_at"] = response["stopped_at"] or at.isoformat()
    elif action == f"stage:{Stage.ON_SITE}" and detail == ARRIVED:
        arrival = clock(Clock.ARRIVAL, booked_at)
        arrival["stopped_at"] = arrival["stopped_at"] or at.isoformat()
    elif action == "sla breached":
        name, _, deadline = detail.partition(": deadline ")
        if name in set(Clock):
            breached = clock(Clock(name))
            breached["breached"] = True
            breached["deadline"] = deadline.replace(" ", "T", 1) or None
    return clocks


def keep(row: OrderRow, snapshot: OrderSnapshot, event: OrderEvent) -> None:
    """Bring the order's row up to the event and the snapshot written with it."""
    row.sqlmodel_update(snapshot.model_dump(exclude={"booked_on", "sla"}))
    row.sqlmodel_update(from_event(row.model_dump(), event.action, event.detail, event.at))
    if snapshot.booked_on is not None:
        row.sqlmodel_update(calendar(snapshot.booked_on))
    if snapshot.sla is not None:
        row.sla_clocks = clock_facts(snapshot.sla)
        row.sqlmodel_update(breaches(row.sla_clocks))
    row.sqlmodel_update(durations(row.model_dump()))


def keep_complaint(row: ComplaintRow) -> None:
    """Keep what a complaint's later snapshots reset (its first reply, its first deadlines and
    the highest tier it reached) and the hours to its resolution."""
    row.first_replied_at = row.first_replied_at or row.acknowledged_at
    row.original_first_reply_due = row.original_first_reply_due or row.first_reply_due
    row.original_resolution_due = row.original_resolution_due or row.resolution_due
    row.tier_reached = max(row.tier_reached or 0, row.tier)
    row.resolution_hours = (row.resolved_at - row.filed_at) / HOUR if row.resolved_at else None
