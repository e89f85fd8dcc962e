"""Dispatch by shifts and on-call duty, through the real order workflow on the time-skipping
test server: offers go to technicians on duty only, an order booked off hours waits for the
next shift, an offer's time runs only on duty, and an emergency at night goes to whoever is on
call. The registry is the harness's spy (tests/harness.py); the schedules are the candidates'.
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from models.order import Priority, Stage
from models.policy import Policy, Weekday
from models.technician import OnCall, Schedule, Shift
from tests.factories import create_candidate
from tests.harness import Handle, Harness, order_eventually, settled

SHANGHAI = ZoneInfo(Policy().timezone)
WEEKDAYS = (Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI)
OFFICE_HOURS = Schedule(shifts=(Shift(days=WEEKDAYS, start=time(9), end=time(18)),))


def next_local(now: datetime, weekday: int, hour: int, minute: int = 0) -> datetime:
    """The first such weekday (0 = Monday) and time in Shanghai at least a day after `now`."""
    day = now.astimezone(SHANGHAI).date() + timedelta(days=1)
    while day.weekday() != weekday:
        day += timedelta(days=1)
    return datetime.combine(day, time(hour, minute), SHANGHAI)


async def move_to(harness: Harness, moment: datetime) -> None:
    await harness.env.sleep(moment - await harness.now())


def on_day(moment: datetime, days: int, hour: int, minute: int = 0) -> datetime:
    day: date = moment.astimezone(SHANGHAI).date() + timedelta(days=days)
    return datetime.combine(day, time(hour, minute), SHANGHAI)


async def offered_to(handle: Handle) -> tuple[str, datetime]:
    """Who holds the offer and until when, to the minute (timers fire a few ms late)."""
    order = await order_eventually(handle, lambda o: o.offer is not None)
    assert order.offer is not None
    return order.offer.technician_id, minute(order.offer.expires_at)


def minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


class TestOffHours:
    async def test_booked_saturday_night_the_first_offer_goes_out_monday_at_nine(
        self, harness: Harness
    ) -> None:
        harness.records.candidates = [
            create_candidate("T-1", schedule=OFFICE_HOURS),
            create_candidate("T-2", schedule=OFFICE_HOURS),
        ]
        saturday = next_local(await harness.now(), 5, 23)
        await move_to(harness, saturday)
        handle = await harness.book()
        monday_nine = on_day(saturday, 2, 9)

        await harness.env.sleep(monday_nine - await harness.now() - timedelta(minutes=1))
        order = await settled(handle)
        assert (order.stage, order.offer, order.offered) == (Stage.DISPATCHING, None, [])
        assert [e.reason for e in order.escalations if e.reason == "no_technician"] == []
        assert "waiting for a shift" in [entry.action for entry in order.timeline]

        await harness.env.sleep(timedelta(minutes=2))
        technician, expires_at = await offered_to(handle)
        assert technician == "T-1"
        assert expires_at == minute(on_day(saturday, 2, 9, 15))  # 15 minutes of T-1's shift

    async def test_an_offer_runs_only_on_shift_so_nobody_is_passed_over_at_night(
        self, harness: Harness
    ) -> None:
        """Offered Friday 17:55: five minutes on Friday, ten on Monday morning."""
        harness.records.candidates = [
            create_candidate("T-1", schedule=OFFICE_HOURS),
            create_candidate("T-2", schedule=OFFICE_HOURS),
        ]
        friday = next_local(await harness.now(), 4, 17, 55)
        await move_to(harness, friday)
        handle = await harness.book()
        technician, expires_at = await offered_to(handle)
        assert (technician, expires_at) == ("T-1", minute(on_day(friday, 3, 9, 10)))
        await harness.env.sleep(on_day(friday, 3, 9, 5) - await harness.now())
        order = await settled(handle)
        assert order.offer is not None
        assert (order.offer.technician_id, order.offered) == ("T-1", [])
        await harness.env.sleep(timedelta(minutes=10))
        assert await offered_to(handle) == ("T-2", minute(on_day(friday, 3, 9, 25)))
        assert (await settled(handle)).offered == ["T-1"]


class TestOnCall:
    async def test_an_emergency_at_two_goes_to_the_technician_on_call(
        self, harness: Harness
    ) -> None:
        night = next_local(await harness.now(), 2, 2)  # a Wednesday, 02:00
        on_call = OnCall(start=night - timedelta(hours=4), end=night + timedelta(hours=4))
        harness.records.candidates = [
            create_candidate("T-DAY", schedule=OFFICE_HOURS),  # ranked first, but asleep
            create_candidate(
                "T-NIGHT", schedule=Schedule(shifts=OFFICE_HOURS.shifts, on_call=(on_call,))
            ),
        ]
        await move_to(harness, night)
        handle = await harness.book(priority=Priority.EMERGENCY)
        technician, expires_at = await offered_to(handle)
        assert technician == "T-NIGHT"
        assert expires_at == minute(night + timedelta(minutes=5))  # the emergency offer timeout

    async def test_on_call_is_for_emergencies_only(self, harness: Harness) -> None:
        night = next_local(await harness.now(), 2, 2)
        on_call = OnCall(start=night - timedelta(hours=4), end=night + timedelta(hours=4))
        harness.records.candidates = [
            create_candidate(
                "T-NIGHT", schedule=Schedule(shifts=OFFICE_HOURS.shifts, on_call=(on_call,))
            ),
        ]
        await move_to(harness, night)
        handle = await harness.book(priority=Priority.NORMAL)
        await harness.env.sleep(timedelta(hours=6, minutes=59))
        assert (await settled(handle)).offer is None
        await harness.env.sleep(timedelta(minutes=2))
        assert await offered_to(handle) == ("T-NIGHT", minute(on_day(night, 0, 9, 15)))

    async def test_nobody_qualified_at_all_still_goes_to_a_supervisor(
        self, harness: Harness
    ) -> None:
        handle = await harness.book()
        order = await order_eventually(handle, lambda o: bool(o.escalations))
        assert [(e.to, e.reason) for e in order.escalations] == [("supervisor", "no_technician")]


class TestDaysOff:
    async def test_a_technician_on_a_day_off_is_skipped_for_one_on_shift(
        self, harness: Harness
    ) -> None:
        monday = next_local(await harness.now(), 0, 10)
        off = Schedule(shifts=OFFICE_HOURS.shifts, days_off=(monday.date(),))
        harness.records.candidates = [
            create_candidate("T-OFF", schedule=off),
            create_candidate("T-ON", schedule=OFFICE_HOURS),
        ]
        await move_to(harness, monday)
        handle = await harness.book()
        technician, _ = await offered_to(handle)
        assert technician == "T-ON"
