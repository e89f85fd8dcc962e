"""The quality figures for the office: the KPI report, as JSON or CSV."""

import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import SessionDep, SettingsDep, role
from api.errors import Unprocessable, problems
from core import kpis
from models.catalog import Category
from models.fields import Moment, ShortText
from models.order import Actor, Clock, Priority, Role

router = APIRouter(prefix="/v1/reports", tags=["reports"])

CSV = "text/csv"
FIGURES = "\n".join(f"- `{name}`: {text}" for name, text in kpis.DEFINITIONS.items())


class KpiQuery(BaseModel):
    """Filters of GET /v1/reports/kpis, all optional and all applied together."""

    model_config = ConfigDict(extra="forbid")

    booked_from: Moment | None = Field(
        default=None, alias="from", description="booked at or after (ISO 8601 with offset)"
    )
    booked_to: Moment | None = Field(
        default=None, alias="to", description="booked before (ISO 8601 with offset)"
    )
    region: ShortText | None = None
    category: Category | None = None
    technician_id: ShortText | None = None
    priority: Priority | None = None
    group_by: kpis.GroupBy | None = Field(
        default=None, description="one group per value; all orders in one group when left out"
    )


@router.get(
    "/kpis",
    responses=problems(401, 403, 422, 503)
    | {200: {"content": {CSV: {"schema": {"type": "string"}}}}},
    description="The quality figures of the orders booked in [`from`, `to`), per group, with "
    "the policy's targets and whether each is met. `Accept: text/csv` answers the same "
    f"report as CSV, a row per group.\n\nThe figures:\n{FIGURES}\n\n{kpis.__doc__}",
)
async def kpi_report(
    query: Annotated[KpiQuery, Query()],
    request: Request,
    _: Annotated[Actor, Depends(role(Role.STAFF, Role.SUPERVISOR, Role.AUDITOR))],
    session: SessionDep,
    settings: SettingsDep,
) -> kpis.KpiReport:
    start, end = query.booked_from, query.booked_to
    if start is not None and end is not None and end <= start:
        raise Unprocessable("query.to: must be after query.from")
    filters = kpis.Filters(
        booked_from=start,
        booked_to=end,
        region=query.region,
        category=query.category,
        technician_id=query.technician_id,
        priority=query.priority,
    )
    report = await kpis.report(
        session, settings.policy.targets, filters, query.group_by, datetime.now(UTC)
    )
    if CSV in request.headers.get("accept", ""):
        return Response(  # type: ignore[return-value]
            content=as_csv(report),
            media_type=CSV,
            headers={"Content-Disposition": 'attachment; filename="kpis.csv"'},
        )
    return report


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        columns: dict[str, Any] = {}
        for name, inner in value.items():
            columns |= flat(inner, f"{prefix}{name}.")
        return columns
    return {prefix.rstrip("."): value}


def as_csv(report: kpis.KpiReport) -> str:
    """A row per group, a column per figure (dotted: `first_response_hours.p80`); every SLA
    clock and priority has its column, so each report has the same columns."""
    every_breach = {str(clock): dict.fromkeys(map(str, Priority), 0) for clock in Clock}

    def row(group: kpis.KpiGroup) -> dict[str, Any]:
        breaches = {
            clock: by_priority | group.sla_breaches.get(clock, {})
            for clock, by_priority in every_breach.items()
        }
        return flat(group.model_dump(mode="json") | {"sla_breaches": breaches})

    rows = [row(group) for group in report.groups]
    # A report with no groups still names its columns.
    columns = list(rows[0] if rows else row(kpis.blank_group(report.targets)))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
