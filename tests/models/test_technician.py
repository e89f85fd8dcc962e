from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from models.catalog import Category, CertificateType
from models.policy import Policy, Weekday
from models.technician import (
    Candidate,
    Certificate,
    OnCall,
    Qualifications,
    Schedule,
    Shift,
    TechnicianStatus,
    duty_deadline,
    next_on_duty,
    rank,
    unqualified_because,
)

DAY = date(2026, 11, 22)


def create_qualifications(**overrides: Any) -> Qualifications:
    fields: dict[str, Any] = {
        "technician_id": "T1",
        "status": TechnicianStatus.ACTIVE,
        "skills": (Category.GAS_STOVE, Category.REFRIGERATOR, Category.WATER_HEATER),
        "regions": ("pudong",),
        "certificates": (
            Certificate(
                type=CertificateType.APPLIANCE_REPAIR, number="A-1", valid_until=date(2027, 1, 1)
            ),
            Certificate(type=CertificateType.GAS, number="G-1", valid_until=date(2027, 1, 1)),
        ),
    }
    return Qualifications(**fields | overrides)


class TestUnqualifiedBecause:
    def test_certified_technician_qualifies(self) -> None:
        """A technician with the skill and valid certificates may take a gas-stove job."""
        assert unqualified_because(create_qualifications(), Category.GAS_STOVE, False, DAY) is None

    def test_expired_gas_certificate_disqualifies_for_gas_stove(self) -> None:
        """A gas certificate that expired before the appointment day rules the technician out."""
        technician = create_qualifications(
            certificates=(
                Certificate(
                    type=CertificateType.APPLIANCE_REPAIR,
                    number="A-1",
                    valid_until=date(2027, 1, 1),
                ),
                Certificate(type=CertificateType.GAS, number="G-1", valid_until=date(2026, 11, 21)),
            )
        )
        reason = unqualified_because(technician, Category.GAS_STOVE, False, DAY)
        assert reason is not None
        assert "gas" in reason

    def test_certificate_valid_on_its_last_day(self) -> None:
        """A certificate is still valid on its valid_until date."""
        technician = create_qualifications(
            certificates=(
                Certificate(type=CertificateType.APPLIANCE_REPAIR, number="A-1", valid_until=DAY),
                Certificate(type=CertificateType.GAS, number="G-1", valid_until=DAY),
            )
        )
        assert unqualified_because(technician, Category.GAS_STOVE, False, DAY) is None

    def test_gas_fired_water_heater_needs_gas(self) -> None:
        """A gas-fired water heater needs the gas certificate; an electric one does not."""
        technician = create_qualifications(
            certificates=(
                Certificate(
                    type=CertificateType.APPLIANCE_REPAIR,
                    number="A-1",
                    valid_until=date(2027, 1, 1),
                ),
            )
        )
        assert unqualified_because(technician, Category.WATER_HEATER, True, DAY) is not None
        assert unqualified_because(technician, Category.WATER_HEATER, False, DAY) is None

    def test_suspended_technician_never_qualifies(self) -> None:
        """Suspension rules a technician out whatever their certificates."""
        technician = create_qualifications(status=TechnicianStatus.SUSPENDED)
        assert "suspended" in (
            unqualified_because(technician, Category.REFRIGERATOR, False, DAY) or ""
        )

    @pytest.mark.parametrize(
        ("category", "certificate"),
        [
            (Category.ELECTRICAL, CertificateType.ELECTRICIAN),
            (Category.PLUMBING, CertificateType.PLUMBER),
        ],
    )
    def test_trades_need_their_own_certificate(
        self, category: Category, certificate: CertificateType
    ) -> None:
        """Electrical work needs an electrician, plumbing a plumber; appliance repair won't do."""
        without = create_qualifications(skills=(category,))
        with_it = create_qualifications(
            skills=(category,),
            certificates=(
                Certificate(type=certificate, number="X-1", valid_until=date(2027, 1, 1)),
            ),
        )
        assert unqualified_because(without, category, False, DAY) is not None
        assert unqualified_because(with_it, category, False, DAY) is None

    def test_missing_skill_disqualifies(self) -> None:
        """A technician is only offered categories they repair."""
        assert (
            unqualified_because(create_qualifications(), Category.TELEVISION, False, DAY)
            is not None
        )


class TestRank:
    def test_region_then_workload_then_rating(self) -> None:
        """Local technicians first; among them the least busy; then the best rated."""
        candidates = [
            Candidate(
                technician_id="far-idle", in_region=False, open_orders=0, rating=Decimal("5")
            ),
            Candidate(
                technician_id="near-busy", in_region=True, open_orders=3, rating=Decimal("5")
            ),
            Candidate(
                technician_id="near-idle-ok", in_region=True, open_orders=1, rating=Decimal("3.5")
            ),
            Candidate(
                technician_id="near-idle-best", in_region=True, open_orders=1, rating=Decimal("4.8")
            ),
            Candidate(technician_id="near-idle-new", in_region=True, open_orders=1, rating=None),
        ]
        assert [c.technician_id for c in rank(candidates)] == [
            "near-idle-best",
            "near-idle-ok",
            "near-idle-new",
            "near-busy",
            "far-idle",
        ]


SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """December 2026, Shanghai time (the 14th is a Monday)."""
    return datetime(2026, 12, day, hour, minute, tzinfo=SHANGHAI)


NIGHTS = Schedule(shifts=(Shift(days=(Weekday.MON,), start=time(22), end=time(6)),))


class TestDuty:
    def test_without_shifts_the_policys_business_hours_and_holidays_apply(self) -> None:
        policy = Policy.model_validate({"business_hours": {"holidays": ["2026-12-15"]}})
        assert next_on_duty(Schedule(), policy, local(14, 8), emergency=False) == local(14, 9)
        assert next_on_duty(Schedule(), policy, local(14, 10), emergency=False) == local(14, 10)
        # Monday 18:00, the 15th a holiday: on again Wednesday 09:00
        assert next_on_duty(Schedule(), policy, local(14, 18), emergency=False) == local(16, 9)

    def test_a_night_shift_runs_into_the_next_morning(self) -> None:
        policy = Policy()
        assert next_on_duty(NIGHTS, policy, local(15, 5), emergency=False) == local(15, 5)
        assert next_on_duty(NIGHTS, policy, local(15, 6), emergency=False) == local(21, 22)
        deadline = duty_deadline(
            NIGHTS, policy, local(15, 5, 50), timedelta(minutes=15), emergency=False
        )
        assert deadline == local(21, 22, 5)  # 10 minutes on Tuesday morning, 5 next Monday

    def test_a_day_off_and_on_call(self) -> None:
        policy = Policy()
        call = OnCall(start=local(14, 20), end=local(15, 2))
        schedule = Schedule(days_off=(date(2026, 12, 14),), on_call=(call,))
        assert next_on_duty(schedule, policy, local(14, 10), emergency=False) == local(15, 9)
        assert next_on_duty(schedule, policy, local(14, 10), emergency=True) == local(14, 20)
        assert duty_deadline(
            schedule, policy, local(15, 1, 55), timedelta(minutes=10), emergency=True
        ) == local(15, 9, 5)

    def test_nobody_on_duty_within_the_horizon(self) -> None:
        never = Schedule(
            shifts=(Shift(days=(Weekday.MON,), start=time(9), end=time(10)),),
            days_off=tuple(date(2026, 12, 14) + timedelta(weeks=n) for n in range(6)),
        )
        assert next_on_duty(never, Policy(), local(14, 8), emergency=False) is None
        assert (
            duty_deadline(never, Policy(), local(14, 8), timedelta(minutes=1), emergency=False)
            is None
        )

    def test_a_shift_needs_a_day(self) -> None:
        with pytest.raises(ValidationError):
            Shift(days=(), start=time(9), end=time(18))
