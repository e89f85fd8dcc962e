from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from models.policy import BusinessCalendar, Policy, parse_duration

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def create_policy(timezone: str = "Asia/Shanghai", **business_hours: object) -> Policy:
    return Policy.model_validate({"timezone": timezone, "business_hours": business_hours})


def create_calendar(timezone: str = "Asia/Shanghai", **business_hours: object) -> BusinessCalendar:
    return create_policy(timezone, **business_hours).calendar


def local(timezone: str, wall_time: str, fold: int = 0) -> datetime:
    """An aware datetime read off the wall clock in `timezone`."""
    return datetime.fromisoformat(wall_time).replace(tzinfo=ZoneInfo(timezone), fold=fold)


def shanghai(wall_time: str) -> datetime:
    return local("Asia/Shanghai", wall_time)


def berlin(wall_time: str, fold: int = 0) -> datetime:
    return local("Europe/Berlin", wall_time, fold)


class TestAdd:
    def test_amount_that_fits_in_the_day_ends_the_same_day(self) -> None:
        """Two business hours from 10:00 end at 12:00 the same day."""
        calendar = create_calendar()
        result = calendar.add(shanghai("2025-06-13 10:00"), timedelta(hours=2))
        assert result.isoformat() == "2025-06-13T12:00:00+08:00"

    def test_amount_left_at_closing_carries_into_the_next_open_day(self) -> None:
        """Two business hours from Friday 17:00 end Monday 10:00 when weekends are closed."""
        calendar = create_calendar(days=WEEKDAYS)
        result = calendar.add(shanghai("2025-06-13 17:00"), timedelta(hours=2))
        assert result.isoformat() == "2025-06-16T10:00:00+08:00"

    def test_start_in_the_evening_counts_from_next_opening(self) -> None:
        """A request logged at 20:00 with one business hour is due 10:00 the next morning."""
        calendar = create_calendar()
        result = calendar.add(shanghai("2025-06-13 20:00"), timedelta(hours=1))
        assert result.isoformat() == "2025-06-14T10:00:00+08:00"

    def test_start_before_opening_counts_from_opening(self) -> None:
        """A request logged at 07:00 with one business hour is due 10:00 the same day."""
        calendar = create_calendar()
        result = calendar.add(shanghai("2025-06-13 07:00"), timedelta(hours=1))
        assert result.isoformat() == "2025-06-13T10:00:00+08:00"

    def test_start_on_a_holiday_counts_from_the_next_business_day(self) -> None:
        """A request logged on a public holiday starts its clock the next business morning."""
        calendar = create_calendar(holidays=["2025-06-13"])
        result = calendar.add(shanghai("2025-06-13 11:00"), timedelta(hours=1))
        assert result.isoformat() == "2025-06-14T10:00:00+08:00"

    def test_start_on_a_closed_weekday_counts_from_the_next_open_weekday(self) -> None:
        """A request logged on Saturday, with weekends closed, starts its clock Monday 09:00."""
        calendar = create_calendar(days=WEEKDAYS)
        result = calendar.add(shanghai("2025-06-14 11:00"), timedelta(minutes=30))
        assert result.isoformat() == "2025-06-16T09:30:00+08:00"

    def test_start_at_closing_time_counts_from_next_opening(self) -> None:
        """A request logged at 18:00 sharp is not counted in the day that just closed."""
        calendar = create_calendar()
        result = calendar.add(shanghai("2025-06-13 18:00"), timedelta(hours=1))
        assert result.isoformat() == "2025-06-14T10:00:00+08:00"

    def test_amount_running_out_at_closing_time_ends_at_closing_time(self) -> None:
        """A whole business day from 09:00 is due 18:00 that day, not 09:00 the next."""
        calendar = create_calendar()
        result = calendar.add(shanghai("2025-06-13 09:00"), timedelta(hours=9))
        assert result.isoformat() == "2025-06-13T18:00:00+08:00"

    def test_last_hour_before_closing_ends_at_closing_time(self) -> None:
        """One business hour from 17:00 is due 18:00, even when the next day is closed."""
        calendar = create_calendar(days=WEEKDAYS)
        result = calendar.add(shanghai("2025-06-13 17:00"), timedelta(hours=1))
        assert result.isoformat() == "2025-06-13T18:00:00+08:00"

    def test_zero_amount_returns_the_start_unchanged(self) -> None:
        """No business time at all is due at once, even outside business hours."""
        calendar = create_calendar()
        start = shanghai("2025-06-13 20:00")
        assert calendar.add(start, timedelta(0)) == start

    def test_ten_weeks_of_weekdays_end_on_the_tenth_friday(self) -> None:
        """Fifty business days from a Monday morning end on the tenth Friday at closing."""
        calendar = create_calendar(days=WEEKDAYS)
        result = calendar.add(shanghai("2025-01-06 09:00"), 50 * timedelta(hours=9))
        assert result.isoformat() == "2025-03-14T18:00:00+08:00"

    def test_holiday_inside_a_long_amount_pushes_the_end_one_business_day(self) -> None:
        """A holiday in week three moves a fifty-business-day deadline to the next Monday."""
        calendar = create_calendar(days=WEEKDAYS, holidays=["2025-01-22"])
        result = calendar.add(shanghai("2025-01-06 09:00"), 50 * timedelta(hours=9))
        assert result.isoformat() == "2025-03-17T18:00:00+08:00"

    def test_start_in_another_time_zone_is_the_same_instant(self) -> None:
        """09:30 UTC is 17:30 in Shanghai, so one business hour is due 09:30 the next day."""
        calendar = create_calendar()
        result = calendar.add(datetime(2025, 6, 13, 9, 30, tzinfo=UTC), timedelta(hours=1))
        assert result.isoformat() == "2025-06-14T09:30:00+08:00"

    def test_result_is_in_the_operator_time_zone(self) -> None:
        """Deadlines read in the operator's time zone whatever zone the start came in."""
        calendar = create_calendar()
        result = calendar.add(datetime(2025, 6, 13, 2, 0, tzinfo=UTC), timedelta(hours=1))
        assert result.tzinfo == ZoneInfo("Asia/Shanghai")

    def test_naive_start_is_refused(self) -> None:
        """A start without a time zone is a programming error, not a guess."""
        calendar = create_calendar()
        with pytest.raises(ValueError, match="no time zone"):
            calendar.add(datetime(2025, 6, 13, 10, 0), timedelta(hours=1))  # noqa: DTZ001 - naive on purpose

    def test_negative_amount_is_refused(self) -> None:
        """Business time cannot be counted backwards."""
        calendar = create_calendar()
        with pytest.raises(ValueError, match="negative"):
            calendar.add(shanghai("2025-06-13 10:00"), timedelta(hours=-1))


class TestAddAcrossDaylightSaving:
    def test_spring_forward_day_keeps_nine_hours_from_nine_to_six(self) -> None:
        """On the day Berlin's clocks go forward, a whole business day still ends at 18:00."""
        calendar = create_calendar("Europe/Berlin")
        result = calendar.add(berlin("2025-03-30 09:00"), timedelta(hours=9))
        assert result.isoformat() == "2025-03-30T18:00:00+02:00"

    def test_amount_carried_over_the_spring_forward_night_resumes_at_nine(self) -> None:
        """Two business hours from Saturday 17:00 end Sunday 10:00 local, after the change."""
        calendar = create_calendar("Europe/Berlin")
        result = calendar.add(berlin("2025-03-29 17:00"), timedelta(hours=2))
        assert result.isoformat() == "2025-03-30T10:00:00+02:00"

    def test_amount_carried_over_the_fall_back_night_resumes_at_nine(self) -> None:
        """Two business hours from Saturday 17:00 end Sunday 10:00 local, after the change."""
        calendar = create_calendar("Europe/Berlin")
        result = calendar.add(berlin("2025-10-25 17:00"), timedelta(hours=2))
        assert result.isoformat() == "2025-10-26T10:00:00+01:00"

    def test_window_across_the_spring_forward_gap_is_two_real_hours(self) -> None:
        """A 01:00-04:00 window on the spring-forward night holds only two hours of work."""
        calendar = create_calendar("Europe/Berlin", start="01:00", end="04:00")
        result = calendar.add(berlin("2025-03-30 01:00"), timedelta(hours=2))
        assert result.isoformat() == "2025-03-30T04:00:00+02:00"

    def test_counting_through_the_spring_forward_gap_skips_the_missing_hour(self) -> None:
        """Thirty minutes from 01:30 end at 03:00 local: 02:00 never appears on the clock."""
        calendar = create_calendar("Europe/Berlin", start="01:00", end="04:00")
        result = calendar.add(berlin("2025-03-30 01:30"), timedelta(minutes=30))
        assert result.isoformat() == "2025-03-30T03:00:00+02:00"

    def test_more_than_the_shortened_window_carries_into_the_next_day(self) -> None:
        """Two and a half hours from 01:00 on the short night end 01:30 the next night."""
        calendar = create_calendar("Europe/Berlin", start="01:00", end="04:00")
        result = calendar.add(berlin("2025-03-30 01:00"), timedelta(hours=2, minutes=30))
        assert result.isoformat() == "2025-03-31T01:30:00+02:00"

    def test_first_pass_through_the_repeated_hour_is_summer_time(self) -> None:
        """Ninety minutes from 01:00 on the fall-back night end at the first 02:30."""
        calendar = create_calendar("Europe/Berlin", start="01:00", end="04:00")
        result = calendar.add(berlin("2025-10-26 01:00"), timedelta(minutes=90))
        assert result.isoformat() == "2025-10-26T02:30:00+02:00"

    def test_second_pass_through_the_repeated_hour_is_winter_time(self) -> None:
        """150 minutes from 01:00 on the fall-back night end at the second 02:30."""
        calendar = create_calendar("Europe/Berlin", start="01:00", end="04:00")
        result = calendar.add(berlin("2025-10-26 01:00"), timedelta(minutes=150))
        assert result.isoformat() == "2025-10-26T02:30:00+01:00"

    def test_window_across_the_fall_back_hour_is_four_real_hours(self) -> None:
        """A 01:00-04:00 window on the fall-back night holds four hours of work."""
        calendar = create_calendar("Europe/Berlin", start="01:00", end="04:00")
        result = calendar.add(berlin("2025-10-26 01:00"), timedelta(hours=4))
        assert result.isoformat() == "2025-10-26T04:00:00+01:00"


class TestBetween:
    def test_end_before_start_is_no_business_time(self) -> None:
        """An interval that runs backwards has no business time in it."""
        calendar = create_calendar()
        assert calendar.between(shanghai("2025-06-13 12:00"), shanghai("2025-06-13 10:00")) == (
            timedelta(0)
        )

    def test_opening_to_closing_is_one_business_day(self) -> None:
        """09:00 to 18:00 on an open day is nine business hours."""
        calendar = create_calendar()
        assert calendar.between(shanghai("2025-06-13 09:00"), shanghai("2025-06-13 18:00")) == (
            timedelta(hours=9)
        )

    def test_night_between_two_days_is_not_counted(self) -> None:
        """17:00 to 10:00 the next morning is two business hours."""
        calendar = create_calendar()
        assert calendar.between(shanghai("2025-06-13 17:00"), shanghai("2025-06-14 10:00")) == (
            timedelta(hours=2)
        )

    def test_interval_outside_business_hours_is_no_business_time(self) -> None:
        """20:00 to 08:00 the next morning counts nothing."""
        calendar = create_calendar()
        assert calendar.between(shanghai("2025-06-13 20:00"), shanghai("2025-06-14 08:00")) == (
            timedelta(0)
        )

    def test_closed_weekend_and_holiday_are_not_counted(self) -> None:
        """Friday 17:00 to Tuesday 10:00 over a closed weekend and a Monday holiday is 2 h."""
        calendar = create_calendar(days=WEEKDAYS, holidays=["2025-06-16"])
        assert calendar.between(shanghai("2025-06-13 17:00"), shanghai("2025-06-17 10:00")) == (
            timedelta(hours=2)
        )

    def test_instants_from_other_time_zones_are_compared_as_instants(self) -> None:
        """01:00 to 03:00 UTC is 09:00 to 11:00 in Shanghai: two business hours."""
        calendar = create_calendar()
        start, end = datetime(2025, 6, 13, 1, tzinfo=UTC), datetime(2025, 6, 13, 3, tzinfo=UTC)
        assert calendar.between(start, end) == timedelta(hours=2)

    def test_spring_forward_night_window_holds_two_hours(self) -> None:
        """The 01:00-04:00 window on the spring-forward night contains two real hours."""
        calendar = create_calendar("Europe/Berlin", start="01:00", end="04:00")
        assert calendar.between(berlin("2025-03-30 00:00"), berlin("2025-03-31 00:00")) == (
            timedelta(hours=2)
        )

    def test_fall_back_night_window_holds_four_hours(self) -> None:
        """The 01:00-04:00 window on the fall-back night contains four real hours."""
        calendar = create_calendar("Europe/Berlin", start="01:00", end="04:00")
        assert calendar.between(berlin("2025-10-26 00:00"), berlin("2025-10-27 00:00")) == (
            timedelta(hours=4)
        )

    def test_interval_inside_one_zone_across_the_change_counts_real_time(self) -> None:
        """01:30 to 03:30 local on the spring-forward night is one real hour."""
        calendar = create_calendar("Europe/Berlin", start="01:00", end="04:00")
        assert calendar.between(berlin("2025-03-30 01:30"), berlin("2025-03-30 03:30")) == (
            timedelta(hours=1)
        )

    def test_naive_end_is_refused(self) -> None:
        """An end without a time zone is a programming error, not a guess."""
        calendar = create_calendar()
        with pytest.raises(ValueError, match="no time zone"):
            calendar.between(shanghai("2025-06-13 09:00"), datetime(2025, 6, 13, 10))  # noqa: DTZ001 - naive on purpose

    @pytest.mark.parametrize(
        ("timezone", "business_hours", "start", "amount"),
        [
            ("Asia/Shanghai", {}, "2025-06-13 17:30", timedelta(hours=9)),
            ("Asia/Shanghai", {"days": WEEKDAYS}, "2025-06-13 17:30", timedelta(hours=27)),
            ("Asia/Shanghai", {"days": WEEKDAYS}, "2025-01-06 09:00", timedelta(hours=450)),
            ("Asia/Shanghai", {"holidays": ["2025-06-14"]}, "2025-06-13 10:15", timedelta(hours=8)),
            ("Asia/Shanghai", {"start": "08:30", "end": "12:00"}, "2025-06-13 11:59", timedelta(1)),
            ("Asia/Shanghai", {}, "2025-06-13 09:00", timedelta(seconds=1)),
            ("Europe/Berlin", {}, "2025-03-29 12:00", timedelta(hours=20)),
            ("Europe/Berlin", {}, "2025-10-25 12:00", timedelta(hours=20)),
            ("Europe/Berlin", {"start": "01:00", "end": "04:00"}, "2025-03-29 02:00", timedelta(4)),
            ("Europe/Berlin", {"start": "01:00", "end": "04:00"}, "2025-10-26 02:30", timedelta(5)),
            (
                "America/New_York",
                {"start": "01:00", "end": "04:00"},
                "2025-03-09 01:15",
                timedelta(1),
            ),
            (
                "America/New_York",
                {"start": "01:00", "end": "04:00"},
                "2025-11-02 01:45",
                timedelta(1),
            ),
        ],
    )
    def test_between_measures_what_add_counted(
        self, timezone: str, business_hours: dict[str, object], start: str, amount: timedelta
    ) -> None:
        """The business time between a start and its deadline is the amount that was added."""
        calendar = create_calendar(timezone, **business_hours)
        begin = local(timezone, start)
        assert calendar.between(begin, calendar.add(begin, amount)) == amount


class TestIsOpen:
    def test_open_from_the_opening_minute(self) -> None:
        """At 09:00 sharp the service is open."""
        assert create_calendar().is_open(shanghai("2025-06-13 09:00"))

    def test_closed_from_the_closing_minute(self) -> None:
        """At 18:00 sharp the service is closed."""
        assert not create_calendar().is_open(shanghai("2025-06-13 18:00"))

    def test_closed_before_opening(self) -> None:
        """At 08:59 the service is still closed."""
        assert not create_calendar().is_open(shanghai("2025-06-13 08:59"))

    def test_closed_on_a_holiday(self) -> None:
        """Midday on a public holiday the service is closed."""
        assert not create_calendar(holidays=["2025-06-13"]).is_open(shanghai("2025-06-13 12:00"))

    def test_closed_on_a_closed_weekday(self) -> None:
        """Midday on Saturday, with weekends closed, the service is closed."""
        assert not create_calendar(days=WEEKDAYS).is_open(shanghai("2025-06-14 12:00"))

    def test_instant_from_another_time_zone_is_read_in_the_operator_zone(self) -> None:
        """02:00 UTC is 10:00 in Shanghai: open; 12:00 UTC is 20:00: closed."""
        calendar = create_calendar()
        assert calendar.is_open(datetime(2025, 6, 13, 2, tzinfo=UTC))
        assert not calendar.is_open(datetime(2025, 6, 13, 12, tzinfo=UTC))

    def test_open_after_the_spring_forward_gap_inside_the_window(self) -> None:
        """03:30 local on the spring-forward night is inside a 01:00-04:00 window."""
        calendar = create_calendar("Europe/Berlin", start="01:00", end="04:00")
        assert calendar.is_open(berlin("2025-03-30 03:30"))

    def test_naive_instant_is_refused(self) -> None:
        """An instant without a time zone is a programming error, not a guess."""
        with pytest.raises(ValueError, match="no time zone"):
            create_calendar().is_open(datetime(2025, 6, 13, 12))  # noqa: DTZ001 - naive on purpose


class TestDeadline:
    def test_complaint_on_friday_evening_is_due_saturday_with_seven_day_hours(self) -> None:
        """A complaint filed Friday 17:30 with one working day to answer is due Saturday 17:30."""
        policy = create_policy()
        deadline = policy.deadline(shanghai("2025-06-13 17:30"), parse_duration("1 working day"))
        assert deadline.isoformat() == "2025-06-14T17:30:00+08:00"

    def test_complaint_on_friday_evening_is_due_monday_with_weekday_hours(self) -> None:
        """With weekends closed, a Friday 17:30 complaint is due Monday 17:30."""
        policy = create_policy(days=WEEKDAYS)
        deadline = policy.deadline(shanghai("2025-06-13 17:30"), parse_duration("1 working day"))
        assert deadline.isoformat() == "2025-06-16T17:30:00+08:00"

    def test_complaint_on_friday_evening_is_due_tuesday_after_a_monday_holiday(self) -> None:
        """With weekends closed and Monday a holiday, a Friday 17:30 complaint is due Tuesday."""
        policy = create_policy(days=WEEKDAYS, holidays=["2025-06-16"])
        deadline = policy.deadline(shanghai("2025-06-13 17:30"), parse_duration("1 working day"))
        assert deadline.isoformat() == "2025-06-17T17:30:00+08:00"

    def test_three_working_days_skip_a_closed_weekend(self) -> None:
        """Three working days from Thursday 14:00, weekends closed, end Tuesday 14:00."""
        policy = create_policy(days=WEEKDAYS)
        deadline = policy.deadline(shanghai("2025-06-19 14:00"), parse_duration("3 working days"))
        assert deadline.isoformat() == "2025-06-24T14:00:00+08:00"

    def test_working_day_lasts_as_long_as_the_business_day(self) -> None:
        """With 08:00-20:00 hours, one working day from Friday 19:00 ends Saturday 19:00."""
        policy = create_policy(start="08:00", end="20:00")
        deadline = policy.deadline(shanghai("2025-06-13 19:00"), parse_duration("1 working day"))
        assert deadline.isoformat() == "2025-06-14T19:00:00+08:00"

    def test_business_minutes_stop_overnight(self) -> None:
        """Thirty business minutes from 17:45 end 09:15 the next morning."""
        policy = create_policy()
        deadline = policy.deadline(
            shanghai("2025-06-13 17:45"), parse_duration("30 business minutes")
        )
        assert deadline.isoformat() == "2025-06-14T09:15:00+08:00"

    def test_wall_clock_duration_ignores_business_hours(self) -> None:
        """A 15-minute offer made at 23:50 expires at 00:05, business hours or not."""
        policy = create_policy()
        deadline = policy.deadline(shanghai("2025-06-14 23:50"), parse_duration("15m"))
        assert deadline.isoformat() == "2025-06-15T00:05:00+08:00"

    def test_wall_clock_hours_are_elapsed_time_across_spring_forward(self) -> None:
        """72 hours from Friday noon in Berlin end Monday 13:00 local: the night lost an hour."""
        policy = create_policy("Europe/Berlin")
        deadline = policy.deadline(berlin("2025-03-28 12:00"), parse_duration("72h"))
        assert deadline.isoformat() == "2025-03-31T13:00:00+02:00"

    def test_wall_clock_day_is_twenty_four_hours_across_fall_back(self) -> None:
        """One day from Saturday noon in Berlin ends Sunday 11:00 local: the night had 25 hours."""
        policy = create_policy("Europe/Berlin")
        deadline = policy.deadline(berlin("2025-10-25 12:00"), parse_duration("1d"))
        assert deadline.isoformat() == "2025-10-26T11:00:00+01:00"

    def test_wall_clock_deadline_is_in_the_operator_time_zone(self) -> None:
        """A start given in UTC yields a deadline on the operator's clock."""
        policy = create_policy()
        deadline = policy.deadline(datetime(2025, 6, 13, 0, 0, tzinfo=UTC), parse_duration("1h"))
        assert deadline.isoformat() == "2025-06-13T09:00:00+08:00"

    def test_naive_start_is_refused_for_wall_clock_durations(self) -> None:
        """A start without a time zone is refused even when no calendar is needed."""
        with pytest.raises(ValueError, match="no time zone"):
            create_policy().deadline(datetime(2025, 6, 13, 10), parse_duration("1h"))  # noqa: DTZ001 - naive on purpose
