import copy
import json
import pickle
from datetime import date, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError
from temporalio.contrib.pydantic import pydantic_data_converter

from models.catalog import Category
from models.policy import (
    Duration,
    DurationUnit,
    Policy,
    PolicyError,
    Weekday,
    load_policy,
    parse_duration,
)

DURATION_EXAMPLES = '"90s", "15m", "72h", "90d", "3 working days", "9 business hours"'

# Every key of api.md's policy file, each set to something other than its default.
FULL_POLICY_TOML = """
timezone = "Europe/Berlin"
[business_hours]
start = "08:00"
end = "17:30"
days = ["mon", "tue", "wed", "thu", "fri"]
holidays = ["2025-12-25", 2025-12-26]
[dispatch]
offer_timeout = "10m"
offer_timeout_emergency = "3m"
appointment_confirm = "45m"
[response_sla]
emergency = "30m"
high = "90m"
normal = "4 business hours"
low = "1 working day"
[arrival_sla]
emergency = "3h"
high = "6h"
normal = "12h"
low = "2 working days"
[visit]
general_repair = "2h"
workshop_repair = "5 working days"
parts_dispatch = "48h"
max_rework = 3
[acceptance]
timeout = "48h"
survey_delay = "12h"
[warranty]
product = "730d"
post_repair = "60d"
[warranty.post_repair_by_category]
air_conditioner = "180d"
gas_stove = "120d"
[complaint]
first_reply = "4 business hours"
resolution = "2 working days"
window_after_close = "30d"
per_order_per_day = 5
[limits]
warranty_claims_per_order = 1
booking_horizon = "30d"
[charges]
currency = "EUR"
visit_fee = "35.50"
[charges.labour]
"replace_compressor" = "300.00"
"replace door seal" = "45"
[charges.labour_by_category.air_conditioner]
"replace_compressor" = "420.00"
[privacy]
erase_personal_data_after = "365d"
[targets]
response_within_sla = 0.9
resolution_hours = 12
mttr_hours = 36
completion_rate = 0.95
satisfaction = 4.5
"""


def write_policy(directory: Path, text: str) -> Path:
    path = directory / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


class DurationHolder(BaseModel):
    duration: Duration


class TestParseDuration:
    @pytest.mark.parametrize(
        ("text", "canonical"),
        [
            ("90s", "90s"),
            ("15m", "15m"),
            ("72h", "72h"),
            ("90d", "90d"),
            ("3 working days", "3 working days"),
            ("1 working day", "1 working day"),
            ("9 business hours", "9 business hours"),
            ("1 business hour", "1 business hour"),
            ("30 business minutes", "30 business minutes"),
            ("1 business minute", "1 business minute"),
            ("72H", "72h"),
            (" 72 h ", "72h"),
            ("  3   Working\tDAYS ", "3 working days"),
            ("1 working days", "1 working day"),
            ("2 business hour", "2 business hours"),
        ],
    )
    def test_every_form_reads_back_as_its_canonical_spelling(
        self, text: str, canonical: str
    ) -> None:
        """Operators may vary case and spacing; the policy shows the canonical spelling."""
        duration = parse_duration(text)
        assert str(duration) == canonical
        assert parse_duration(str(duration)) == duration

    @pytest.mark.parametrize(
        ("text", "amount", "unit"),
        [
            ("90s", 90, DurationUnit.SECONDS),
            ("15m", 15, DurationUnit.MINUTES),
            ("72h", 72, DurationUnit.HOURS),
            ("90d", 90, DurationUnit.DAYS),
            ("3 working days", 3, DurationUnit.WORKING_DAYS),
            ("9 business hours", 9, DurationUnit.BUSINESS_HOURS),
            ("30 business minutes", 30, DurationUnit.BUSINESS_MINUTES),
        ],
    )
    def test_amount_and_unit_are_read(self, text: str, amount: int, unit: DurationUnit) -> None:
        """Each form is read as the amount and unit it spells."""
        assert parse_duration(text) == Duration(amount, unit)

    @pytest.mark.parametrize(
        "text",
        ["15 minutes", "3 wrking days", "", "1.5h", "h", "72", "3 days", "3 business days", "٣h"],
    )
    def test_text_that_is_not_a_duration_is_refused(self, text: str) -> None:
        """A misspelt duration is refused with examples of what is accepted."""
        with pytest.raises(ValueError, match="not a duration") as refusal:
            parse_duration(text)
        assert DURATION_EXAMPLES in str(refusal.value)

    @pytest.mark.parametrize("text", ["0h", "-1h", "0 working days", "-3 business hours"])
    def test_zero_or_negative_duration_is_refused(self, text: str) -> None:
        """A deadline that is already due (or overdue) at the start is refused."""
        with pytest.raises(ValueError, match="longer than zero"):
            parse_duration(text)

    @pytest.mark.parametrize("text", ["36501d", "876025h", "36501 working days"])
    def test_duration_beyond_a_century_is_refused(self, text: str) -> None:
        """A duration too long for any deadline to be computed is refused."""
        with pytest.raises(ValueError, match="not be longer than 36500 days"):
            parse_duration(text)


class TestDurationKinds:
    @pytest.mark.parametrize(
        ("text", "elapsed"),
        [
            ("90s", timedelta(seconds=90)),
            ("15m", timedelta(minutes=15)),
            ("72h", timedelta(hours=72)),
            ("90d", timedelta(days=90)),
        ],
    )
    def test_wall_clock_duration_is_elapsed_time(self, text: str, elapsed: timedelta) -> None:
        """A wall-clock duration is plain elapsed time, a day being 24 hours."""
        duration = parse_duration(text)
        assert not duration.is_business
        assert duration.as_timedelta() == elapsed

    @pytest.mark.parametrize("text", ["3 working days", "9 business hours", "30 business minutes"])
    def test_business_duration_has_no_elapsed_time_of_its_own(self, text: str) -> None:
        """Business time cannot be turned into elapsed time without a calendar."""
        duration = parse_duration(text)
        assert duration.is_business
        with pytest.raises(ValueError, match="business calendar"):
            duration.as_timedelta()

    def test_business_amount_counts_working_days_at_the_business_day_length(self) -> None:
        """Three working days of 09:00-18:00 are 27 business hours."""
        assert Policy().business_amount(parse_duration("3 working days")) == timedelta(hours=27)

    def test_business_amount_follows_the_configured_business_hours(self) -> None:
        """With 08:00-20:00 hours a working day is 12 business hours."""
        policy = Policy.model_validate({"business_hours": {"start": "08:00", "end": "20:00"}})
        assert policy.business_amount(parse_duration("1 working day")) == timedelta(hours=12)

    @pytest.mark.parametrize(
        ("text", "amount"),
        [
            ("9 business hours", timedelta(hours=9)),
            ("30 business minutes", timedelta(minutes=30)),
        ],
    )
    def test_business_hours_and_minutes_do_not_depend_on_the_day(
        self, text: str, amount: timedelta
    ) -> None:
        """Business hours and minutes count as written whatever the business day's length."""
        policy = Policy.model_validate({"business_hours": {"start": "08:00", "end": "20:00"}})
        assert policy.business_amount(parse_duration(text)) == amount

    def test_business_amount_of_a_wall_clock_duration_is_refused(self) -> None:
        """Asking how much business time "72h" is mixes up the two kinds of duration."""
        with pytest.raises(ValueError, match="wall-clock"):
            Policy().business_amount(parse_duration("72h"))


class TestDurationValue:
    def test_durations_are_equal_by_spelling(self) -> None:
        """ "60m" and "1h" last as long but are different settings."""
        assert parse_duration("60m") != parse_duration("1h")
        assert parse_duration("60m") == parse_duration("60M")

    def test_duration_cannot_be_changed(self) -> None:
        """A policy's durations are fixed once read."""
        duration = parse_duration("72h")
        with pytest.raises(AttributeError):
            duration.amount = 1  # type: ignore[misc]

    def test_duration_is_hashable_by_value(self) -> None:
        """Equal durations are interchangeable as keys."""
        assert {parse_duration("72h"): "timeout"}[parse_duration(" 72H")] == "timeout"

    def test_duration_survives_copying_and_pickling(self) -> None:
        """Copies of a duration are equal to it."""
        duration = parse_duration("3 working days")
        assert copy.deepcopy(duration) == duration
        assert pickle.loads(pickle.dumps(duration)) == duration  # noqa: S301 - our own bytes

    def test_model_field_reads_a_duration_from_text(self) -> None:
        """A duration field accepts the policy-file spelling."""
        assert DurationHolder.model_validate({"duration": "3 working days"}).duration == (
            Duration(3, DurationUnit.WORKING_DAYS)
        )

    def test_model_field_refuses_a_number(self) -> None:
        """A bare number is refused: its unit would be a guess."""
        with pytest.raises(ValidationError, match="write it as a string"):
            DurationHolder.model_validate({"duration": 72})

    def test_model_field_serialises_to_the_canonical_spelling(self) -> None:
        """Dumped policies show durations as the policy file spells them."""
        holder = DurationHolder.model_validate({"duration": " 3  WORKING days"})
        assert holder.model_dump() == {"duration": "3 working days"}
        assert holder.model_dump_json() == '{"duration":"3 working days"}'

    def test_model_field_reads_back_its_own_json(self) -> None:
        """A duration read from dumped JSON is the duration that was dumped."""
        holder = DurationHolder(duration=parse_duration("9 business hours"))
        assert DurationHolder.model_validate_json(holder.model_dump_json()) == holder

    def test_json_schema_shows_a_string_with_the_default_spelled_out(self) -> None:
        """Clients reading the schema see durations as strings, defaults included."""
        schema = Policy.model_json_schema()["$defs"]["Acceptance"]["properties"]["timeout"]
        assert schema == {"default": "72h", "title": "Timeout", "type": "string"}


class TestPolicyDefaults:
    def test_defaults_are_those_of_the_design(self) -> None:
        """Without a policy file the service runs on api.md's documented values."""
        assert Policy().model_dump(mode="json") == {
            "timezone": "Asia/Shanghai",
            "business_hours": {
                "start": "09:00",
                "end": "18:00",
                "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                "holidays": [],
            },
            "dispatch": {
                "offer_timeout": "15m",
                "offer_timeout_emergency": "5m",
                "appointment_confirm": "30m",
            },
            "response_sla": {"emergency": "1h", "high": "2h", "normal": "8h", "low": "24h"},
            "arrival_sla": {"emergency": "4h", "high": "8h", "normal": "24h", "low": "48h"},
            "visit": {
                "general_repair": "1h",
                "workshop_repair": "3 working days",
                "parts_dispatch": "24h",
                "max_rework": 2,
            },
            "acceptance": {"timeout": "72h", "survey_delay": "24h"},
            "warranty": {"product": "365d", "post_repair": "90d", "post_repair_by_category": {}},
            "complaint": {
                "first_reply": "1 working day",
                "resolution": "3 working days",
                "window_after_close": "90d",
                "per_order_per_day": 3,
            },
            "limits": {"warranty_claims_per_order": 3, "booking_horizon": "90d"},
            "charges": {
                "currency": "CNY",
                "visit_fee": "50.00",
                "labour": {},
                "labour_by_category": {},
            },
            "privacy": {"erase_personal_data_after": "180d"},
            "targets": {
                "response_within_sla": 0.80,
                "resolution_hours": 24,
                "mttr_hours": 48,
                "completion_rate": 0.90,
                "satisfaction": 4.25,
            },
        }

    def test_no_policy_file_means_the_defaults(self) -> None:
        """Leaving REPAIRFLOW_POLICY_FILE unset gives the built-in policy."""
        assert load_policy(None) == Policy()

    def test_money_defaults_are_exact_decimals(self) -> None:
        """The visit fee is exact money, never a float."""
        assert Policy().charges.visit_fee == Decimal("50.00")

    def test_policy_cannot_be_changed(self) -> None:
        """A loaded policy is fixed for the life of the orders that carry it."""
        with pytest.raises(ValidationError, match="frozen"):
            Policy().timezone = "Europe/Berlin"  # type: ignore[misc]


class TestLoadPolicy:
    def test_file_with_every_key_is_read(self, tmp_path: Path) -> None:
        """Every documented key of the policy file takes effect."""
        policy = load_policy(write_policy(tmp_path, FULL_POLICY_TOML))
        assert policy.timezone == "Europe/Berlin"
        assert policy.business_hours.start == time(8)
        assert policy.business_hours.end == time(17, 30)
        assert policy.business_hours.days == (
            Weekday.MON,
            Weekday.TUE,
            Weekday.WED,
            Weekday.THU,
            Weekday.FRI,
        )
        assert policy.business_hours.holidays == (date(2025, 12, 25), date(2025, 12, 26))
        assert [str(policy.dispatch.offer_timeout), str(policy.dispatch.appointment_confirm)] == [
            "10m",
            "45m",
        ]
        assert str(policy.dispatch.offer_timeout_emergency) == "3m"
        assert [str(d) for d in policy.response_sla.model_dump().values()] == [
            "30m",
            "90m",
            "4 business hours",
            "1 working day",
        ]
        assert [str(d) for d in policy.arrival_sla.model_dump().values()] == [
            "3h",
            "6h",
            "12h",
            "2 working days",
        ]
        assert policy.visit.model_dump() == {
            "general_repair": "2h",
            "workshop_repair": "5 working days",
            "parts_dispatch": "48h",
            "max_rework": 3,
        }
        assert policy.acceptance.model_dump() == {"timeout": "48h", "survey_delay": "12h"}
        assert policy.warranty.model_dump() == {
            "product": "730d",
            "post_repair": "60d",
            "post_repair_by_category": {
                Category.AIR_CONDITIONER: "180d",
                Category.GAS_STOVE: "120d",
            },
        }
        assert policy.complaint.model_dump(mode="json") == {
            "first_reply": "4 business hours",
            "resolution": "2 working days",
            "window_after_close": "30d",
            "per_order_per_day": 5,
        }
        assert policy.limits.model_dump(mode="json") == {
            "warranty_claims_per_order": 1,
            "booking_horizon": "30d",
        }
        assert policy.charges.model_dump() == {
            "currency": "EUR",
            "visit_fee": Decimal("35.50"),
            "labour": {"replace_compressor": Decimal("300.00"), "replace door seal": Decimal("45")},
            "labour_by_category": {"air_conditioner": {"replace_compressor": Decimal("420.00")}},
        }
        assert policy.charges.labour_for(Category.AIR_CONDITIONER) == {
            "replace_compressor": Decimal("420.00"),
            "replace door seal": Decimal("45"),
        }
        assert str(policy.privacy.erase_personal_data_after) == "365d"
        assert policy.targets.model_dump() == {
            "response_within_sla": 0.9,
            "resolution_hours": 12,
            "mttr_hours": 36,
            "completion_rate": 0.95,
            "satisfaction": 4.5,
        }

    def test_keys_left_out_keep_their_defaults(self, tmp_path: Path) -> None:
        """A file that sets one key changes only that key."""
        policy = load_policy(
            write_policy(tmp_path, '[visit]\nworkshop_repair = "5 working days"\n')
        )
        assert policy == Policy.model_validate({"visit": {"workshop_repair": "5 working days"}})
        assert policy.visit.general_repair == parse_duration("1h")

    def test_category_override_replaces_the_post_repair_window(self, tmp_path: Path) -> None:
        """Air conditioners get their own post-repair window; other categories the general one."""
        policy = load_policy(write_policy(tmp_path, FULL_POLICY_TOML))
        assert policy.warranty.post_repair_for(Category.AIR_CONDITIONER) == parse_duration("180d")
        assert policy.warranty.post_repair_for(Category.REFRIGERATOR) == parse_duration("60d")

    def test_path_may_be_given_as_text(self, tmp_path: Path) -> None:
        """The environment variable's plain string path is accepted."""
        path = write_policy(tmp_path, 'timezone = "UTC"\n')
        assert load_policy(str(path)).timezone == "UTC"


class TestLoadPolicyErrors:
    @pytest.mark.parametrize(
        ("toml", "problem"),
        [
            ("[dispatcher]\noffer_timeout = '1m'\n", "dispatcher: unknown key"),
            ("[dispatch]\noffer_timout = '1m'\n", "dispatch.offer_timout: unknown key"),
            ("colour = 'blue'\n", "colour: unknown key"),
            (
                "[visit]\nworkshop_repair = '3 wrking days'\n",
                "visit.workshop_repair = '3 wrking days': not a duration (use e.g."
                ' "90s", "15m", "72h", "90d", "3 working days", "9 business hours")',
            ),
            ("[visit]\ngeneral_repair = '0h'\n", "visit.general_repair = '0h': a duration must be"),
            ("[acceptance]\ntimeout = 72\n", "acceptance.timeout = 72: not a duration: write it"),
            (
                "[business_hours]\nstart = '09:00'\nend = '08:00'\n",
                "business_hours.end = '08:00': must be after business_hours.start (09:00)",
            ),
            (
                "[business_hours]\nend = '09:00'\n",
                "business_hours.end = '09:00': must be after business_hours.start (09:00)",
            ),
            (
                "[business_hours]\nstart = '9am'\n",
                "business_hours.start = '9am': not a time of day",
            ),
            (
                "[business_hours]\ndays = []\n",
                "business_hours.days = []: must name at least one day",
            ),
            (
                "[business_hours]\ndays = ['mon', 'fri', 'mon']\n",
                "business_hours.days = ['mon', 'fri', 'mon']: lists mon more than once",
            ),
            (
                "[business_hours]\ndays = ['mon', 'Tuesday']\n",
                "business_hours.days[1] = 'Tuesday': ",
            ),
            (
                "[business_hours]\nholidays = ['2025-02-30']\n",
                "business_hours.holidays[0] = '2025-02-30'",
            ),
            ("[charges]\nvisit_fee = 50.5\n", "charges.visit_fee = 50.5: not an amount of money"),
            ("[charges]\nvisit_fee = 50\n", "charges.visit_fee = 50: not an amount of money"),
            (
                "[charges]\nvisit_fee = '-5.00'\n",
                "charges.visit_fee = '-5.00': an amount of money must not",
            ),
            (
                "[charges.labour]\nreplace_compressor = '300.001'\n",
                "charges.labour.replace_compressor = '300.001': not an amount of money",
            ),
            (
                "[charges.labour]\n'door seal' = 4.5\n",
                'charges.labour."door seal" = 4.5: not an amount',
            ),
            ("[charges]\ncurrency = 'cny'\n", "charges.currency = 'cny': not a currency code"),
            (
                "timezone = 'Mars/Olympus_Mons'\n",
                "timezone = 'Mars/Olympus_Mons': not an IANA time zone",
            ),
            ("timezone = 'Asia'\n", "timezone = 'Asia': not an IANA time zone"),
            (
                "[warranty.post_repair_by_category]\naircon = '180d'\n",
                "warranty.post_repair_by_category.aircon = 'aircon': Input should be 'air_cond",
            ),
            (
                "[warranty.post_repair_by_category]\nair_conditioner = '180 days'\n",
                "warranty.post_repair_by_category.air_conditioner = '180 days': not a duration",
            ),
            (
                "[visit]\nmax_rework = -1\n",
                "visit.max_rework = -1: Input should be greater than or equal",
            ),
            (
                "[visit]\nmax_rework = '2'\n",
                "visit.max_rework = '2': Input should be a valid integer",
            ),
            ("dispatch = '15m'\n", "dispatch = '15m': Input should be a valid dictionary"),
        ],
    )
    def test_problem_names_the_file_the_key_and_the_value(
        self, tmp_path: Path, toml: str, problem: str
    ) -> None:
        """The operator sees which key of which file holds what, and why it is refused."""
        path = write_policy(tmp_path, toml)
        with pytest.raises(PolicyError) as refusal:
            load_policy(path)
        assert str(refusal.value).startswith(f"policy file {path}: {problem}")

    def test_every_problem_in_the_file_is_reported_on_its_own_line(self, tmp_path: Path) -> None:
        """Fixing one mistake does not just reveal the next: all are listed at once."""
        path = write_policy(tmp_path, "[dispatch]\noffer_timout = '1m'\noffer_timeout = '1 hour'\n")
        with pytest.raises(PolicyError) as refusal:
            load_policy(path)
        assert sorted(str(refusal.value).splitlines()) == [
            f"policy file {path}: dispatch.offer_timeout = '1 hour': not a duration"
            f" (use e.g. {DURATION_EXAMPLES})",
            f"policy file {path}: dispatch.offer_timout: unknown key",
        ]

    def test_missing_file_is_named(self, tmp_path: Path) -> None:
        """A wrong REPAIRFLOW_POLICY_FILE says which file could not be read."""
        path = tmp_path / "missing.toml"
        with pytest.raises(PolicyError) as refusal:
            load_policy(path)
        assert (
            str(refusal.value) == f"policy file {path}: cannot be read: No such file or directory"
        )

    def test_broken_toml_syntax_points_at_the_line(self, tmp_path: Path) -> None:
        """A syntax error says it is not TOML and where the parser stopped."""
        path = write_policy(tmp_path, '[visit]\nworkshop_repair "3 working days"\n')
        with pytest.raises(PolicyError, match=r"not valid TOML: .*line 2") as refusal:
            load_policy(path)
        assert str(refusal.value).startswith(f"policy file {path}: ")

    def test_file_that_is_not_text_is_refused(self, tmp_path: Path) -> None:
        """A binary file in place of the policy is reported, not a crash."""
        path = tmp_path / "policy.toml"
        path.write_bytes(b'timezone = "\xff"\n')
        with pytest.raises(PolicyError, match="not valid TOML"):
            load_policy(path)

    def test_policy_error_is_a_value_error(self) -> None:
        """Callers that handle ValueError also handle a bad policy."""
        assert issubclass(PolicyError, ValueError)


class TestPolicyThroughTheDataConverter:
    @pytest.mark.parametrize("toml", ["", FULL_POLICY_TOML])
    def test_policy_arrives_in_the_workflow_unchanged(self, tmp_path: Path, toml: str) -> None:
        """A policy passed to a workflow is read back equal to the one sent."""
        policy = load_policy(write_policy(tmp_path, toml))
        converter = pydantic_data_converter.payload_converter
        payloads = converter.to_payloads([policy])
        assert converter.from_payloads(payloads, [Policy]) == [policy]

    def test_policy_payload_spells_values_as_the_policy_file_does(self, tmp_path: Path) -> None:
        """Workflow histories show durations, times and money as readable strings."""
        policy = load_policy(write_policy(tmp_path, FULL_POLICY_TOML))
        (payload,) = pydantic_data_converter.payload_converter.to_payloads([policy])
        document = json.loads(payload.data)
        assert document["visit"]["workshop_repair"] == "5 working days"
        assert document["business_hours"]["end"] == "17:30"
        assert document["charges"]["visit_fee"] == "35.50"
