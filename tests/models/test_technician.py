from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from models.catalog import Category, CertificateType
from models.technician import (
    Candidate,
    Certificate,
    Qualifications,
    TechnicianStatus,
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
