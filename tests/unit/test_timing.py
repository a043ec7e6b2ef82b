"""timing.py: durations, run_at parsing, cron times across DST changes, intervals."""

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from dartwing.dartwing_core.background_jobs.errors import ValidationError
from dartwing.dartwing_core.background_jobs.timing import (
	check_cron,
	due_time,
	next_cron,
	next_interval,
	parse_duration,
	zone,
)

NEW_YORK = ZoneInfo("America/New_York")
UTC = timezone.utc


def runs(expression: str, tz, start: datetime, count: int) -> list[str]:
	"""The next `count` times after `start`, as wall times with their zone abbreviation."""
	out, moment = [], start
	for _ in range(count):
		moment = next_cron(expression, tz, moment)
		out.append(moment.astimezone(tz).strftime("%m-%d %H:%M %Z"))
	return out


@pytest.mark.parametrize(
	("text", "seconds"),
	[
		(0, 0),
		(90, 90),
		("90", 90),
		("10m", 600),
		("1h30m", 5400),
		("2d", 172800),
		("1.5h", 5400),
		("1w", 604800),
	],
)
def test_durations(text, seconds):
	assert parse_duration("delay", text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "10 parsecs", "m10", True, -1, float("nan"), None])
def test_bad_durations_name_the_field(text):
	with pytest.raises(ValidationError) as error:
		parse_duration("delay", text)
	assert error.value.field == "delay"


def test_due_time_is_naive_in_the_engines_zone_and_never_before_now():
	now = datetime(2026, 6, 1, 12, 0)
	paris = ZoneInfo("Europe/Paris")

	assert due_time("2026-06-01T12:30:00+00:00", None, now, paris) == datetime(2026, 6, 1, 14, 30)
	assert due_time(None, "10m", now, UTC) == datetime(2026, 6, 1, 12, 10)
	assert due_time("2020-01-01T00:00:00Z", None, now, UTC) == now
	assert due_time(None, None, now, UTC) is None


def test_spring_forward_runs_a_skipped_time_once_shifted_by_the_gap():
	# 2026-03-08 02:00 EST -> 03:00 EDT in New York
	assert runs("30 2 * * *", NEW_YORK, datetime(2026, 3, 7, 12, tzinfo=UTC), 3) == [
		"03-08 03:30 EDT",
		"03-09 02:30 EDT",
		"03-10 02:30 EDT",
	]
	assert runs("*/30 * * * *", NEW_YORK, datetime(2026, 3, 8, 6, tzinfo=UTC), 4) == [
		"03-08 01:30 EST",
		"03-08 03:00 EDT",  # 02:00 does not exist: at the jump
		"03-08 03:30 EDT",  # 02:30 shifted onto 03:30, which runs once
		"03-08 04:00 EDT",
	]


def test_fall_back_runs_a_repeated_time_once_unless_the_hour_is_a_wildcard():
	# 2026-11-01 02:00 EDT -> 01:00 EST in New York: 01:00-01:59 happens twice
	assert runs("30 1 * * *", NEW_YORK, datetime(2026, 10, 31, 12, tzinfo=UTC), 3) == [
		"11-01 01:30 EDT",
		"11-02 01:30 EST",
		"11-03 01:30 EST",
	]
	assert runs("*/30 * * * *", NEW_YORK, datetime(2026, 11, 1, 4, tzinfo=UTC), 7) == [
		"11-01 00:30 EDT",
		"11-01 01:00 EDT",
		"11-01 01:30 EDT",
		"11-01 01:00 EST",
		"11-01 01:30 EST",
		"11-01 02:00 EST",
		"11-01 02:30 EST",
	]


def test_every_utc_minute_of_a_dst_night_runs_once_for_a_per_minute_cron():
	for start in (datetime(2026, 3, 8, 5, tzinfo=UTC), datetime(2026, 11, 1, 4, tzinfo=UTC)):
		moment, seen = start, []
		while moment < start + timedelta(hours=4):
			moment = next_cron("* * * * *", NEW_YORK, moment)
			seen.append(moment)
		assert seen == [start + timedelta(minutes=m) for m in range(1, len(seen) + 1)]


def test_intervals_keep_to_their_anchor():
	anchor = datetime(2026, 1, 1, tzinfo=UTC)

	assert next_interval(600, anchor, anchor) == anchor + timedelta(minutes=10)
	assert next_interval(600, anchor, anchor + timedelta(minutes=25)) == anchor + timedelta(minutes=30)
	assert next_interval(600, anchor, anchor - timedelta(days=1)) == anchor + timedelta(minutes=10)


@pytest.mark.parametrize(
	("expression", "problem"),
	[
		("0 0 30 2 *", "matches no date"),
		("0 0 31 4 *", "matches no date"),
		("61 * * * *", "not a valid cron"),
		("* * * *", "5 fields"),
		("0 * * * * *", "5 fields"),
		("@hourly", "5 fields"),
		("", "required"),
	],
)
def test_bad_cron_expressions_name_the_field(expression, problem):
	with pytest.raises(ValidationError) as error:
		check_cron(expression)
	assert error.value.field == "cron"
	assert problem in error.value.problem


def test_unknown_time_zones_name_the_field():
	assert zone("Europe/Paris") == ZoneInfo("Europe/Paris")
	for name in ("Mars/Olympus", "", "../../etc/passwd", None):
		with pytest.raises(ValidationError) as error:
			zone(name)
		assert error.value.field == "time_zone"
