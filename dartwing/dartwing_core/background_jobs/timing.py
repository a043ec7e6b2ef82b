"""When jobs run: the due time of a delayed job (run_at / delay) and the next times of a Job
Schedule (a 5-field cron expression in its time zone, or an interval). Pure: the clock is passed in.

Cron times are wall-clock times of the schedule's zone, as cron reads them. Across DST changes:
a time the clock skips (02:30 on a spring-forward night) runs once, shifted forward by the gap
(03:30); a time the clock shows twice (01:30 on a fall-back night) runs once, at its first
occurrence, except for expressions whose hour field is `*` (every hour), which also run in the
repeated hour, as vixie cron does for its wildcard jobs."""

import re
import threading
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from .errors import ValidationError

MAX_AHEAD = timedelta(days=365)  # run_at / delay further ahead is refused: most likely a mistake
_DST_REACH = timedelta(hours=3)  # more than any zone's clock moves at once
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(field: str, value) -> float:
	"""Seconds from a number or text such as "90", "10m", "1h30m", "2d" (s, m, h, d, w)."""
	if isinstance(value, bool):
		raise ValidationError(field, f"must be a number of seconds or a duration like 10m, not {value!r}")
	if isinstance(value, int | float):
		seconds = float(value)
	elif isinstance(value, str) and value.strip():
		text = value.strip().lower().replace(" ", "")
		parts = _DURATION.findall(text)
		if not parts or "".join(n + u for n, u in parts) != text:
			raise ValidationError(field, f"is not a duration like 90, 10m, 1h30m or 2d: {value!r}")
		seconds = sum(float(n) * _UNITS[u] for n, u in parts)
	else:
		raise ValidationError(field, f"must be a number of seconds or a duration like 10m, not {value!r}")
	if not 0 <= seconds < float("inf"):
		raise ValidationError(field, f"must be zero or more seconds, not {value!r}")
	return seconds


def parse_instant(field: str, value, tz: tzinfo) -> datetime:
	"""An aware datetime from a datetime (naive: in `tz`) or ISO 8601 text, which must carry its
	offset (Z or +02:00): a bare wall time is ambiguous between the caller's zone and the server's."""
	if isinstance(value, datetime):
		return value if value.tzinfo else value.replace(tzinfo=tz)
	if not isinstance(value, str) or not value.strip():
		raise ValidationError(field, f"must be an ISO 8601 date-time with offset, not {value!r}")
	text = value.strip()
	try:
		parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" else text)
	except ValueError:
		raise ValidationError(field, f"is not an ISO 8601 date-time: {value!r}") from None
	if parsed.tzinfo is None:
		raise ValidationError(field, f"needs a UTC offset (e.g. Z or +02:00): {value!r}")
	return parsed


def due_time(run_at, delay, now: datetime, tz: tzinfo) -> datetime | None:
	"""When a submitted job is due, naive in `tz` as the store keeps it (`now` is too); None when
	neither is given. A time in the past means now; more than MAX_AHEAD ahead is refused."""
	if run_at in (None, "") and delay in (None, ""):
		return None
	if run_at not in (None, "") and delay not in (None, ""):
		raise ValidationError("run_at", "give run_at or delay, not both")
	if run_at not in (None, ""):
		field, due = "run_at", parse_instant("run_at", run_at, tz).astimezone(tz).replace(tzinfo=None)
	else:
		field, seconds = "delay", parse_duration("delay", delay)
		if seconds > MAX_AHEAD.total_seconds():
			raise ValidationError("delay", f"is more than {MAX_AHEAD.days} days ahead")
		due = now + timedelta(seconds=seconds)
	if due - now > MAX_AHEAD:
		raise ValidationError(field, f"is more than {MAX_AHEAD.days} days ahead")
	return max(due, now)


def zone(name) -> ZoneInfo:
	"""The IANA time zone `name` (Europe/Paris, UTC, ...)."""
	if not isinstance(name, str) or not name.strip():
		raise ValidationError("time_zone", "is required (an IANA name such as UTC or Europe/Paris)")
	try:
		return ZoneInfo(name.strip())
	except (ZoneInfoNotFoundError, ValueError, OSError):
		raise ValidationError("time_zone", f"unknown time zone {name!r}") from None


def check_cron(expression) -> str:
	"""A 5-field cron expression that matches at least one time; normalized spacing."""
	if not isinstance(expression, str) or not expression.strip():
		raise ValidationError("cron", "is required (5 fields: minute hour day month weekday)")
	fields = expression.split()
	if len(fields) != 5:
		raise ValidationError(
			"cron", f"must have 5 fields (minute hour day month weekday), not {len(fields)}"
		)
	expression = " ".join(fields)
	try:
		croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
	except CroniterBadDateError:
		raise ValidationError("cron", f"{expression!r} matches no date (e.g. February 30th)") from None
	except (CroniterError, ValueError, KeyError) as exc:
		raise ValidationError("cron", f"{expression!r} is not a valid cron expression: {exc}") from None
	return expression


_parsed = threading.local()


def _times(expression: str, start: datetime) -> croniter:
	"""A croniter over `expression` from `start`. Parsing an expression costs several times a
	step, and a tick steps thousands of schedules sharing a few expressions: each thread keeps
	its parsed ones and moves them to the new start."""
	cache = _parsed.__dict__.setdefault("by_expression", {})
	times = cache.get(expression)
	if times is None:
		if len(cache) > 1000:
			cache.clear()
		times = cache[expression] = croniter(expression, start)
	else:
		times.set_current(start, force=True)
	return times


def next_cron(expression: str, tz: tzinfo, after: datetime) -> datetime:
	"""The first time after the aware `after` that `expression` names in `tz`, aware in UTC."""
	local = after.astimezone(tz).replace(tzinfo=None)
	candidate = _times(expression, local).get_next(datetime)
	instants = _instants(candidate, tz, False)
	if len(instants) == 1 and _offset(after, tz) == instants[0].astimezone(tz).utcoffset():
		if not _in_gap(candidate, tz) and instants[0] > after:
			return instants[0]
	return _next_cron_near_change(expression, tz, after)


def _next_cron_near_change(expression: str, tz: tzinfo, after: datetime) -> datetime:
	"""next_cron when a DST change lies between: walk the wall times from before `after` (the
	repeated hour comes back to earlier wall times) and keep the earliest instant after it."""
	both = expression.split()[1].startswith("*")
	times = _times(expression, after.astimezone(tz).replace(tzinfo=None) - _DST_REACH)
	best = None
	while True:
		local = times.get_next(datetime)
		for instant in _instants(local, tz, both):
			if instant > after and (best is None or instant < best):
				best = instant
		if best is not None and local > best.astimezone(tz).replace(tzinfo=None) + _DST_REACH:
			return best


def _instants(local: datetime, tz: tzinfo, both: bool) -> list[datetime]:
	"""The UTC instants a wall time stands for: one; two in a repeated hour (the first unless
	`both`); the time shifted forward by the gap when the clock skips it."""
	first = local.replace(tzinfo=tz, fold=0).astimezone(timezone.utc)
	second = local.replace(tzinfo=tz, fold=1).astimezone(timezone.utc)
	if first == second or _in_gap(local, tz):
		return [first]
	return [first, second] if both else [first]


def _in_gap(local: datetime, tz: tzinfo) -> bool:
	return local.replace(tzinfo=tz).astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None) != local


def _offset(moment: datetime, tz: tzinfo):
	return moment.astimezone(tz).utcoffset()


def next_interval(interval: float, anchor: datetime, after: datetime) -> datetime:
	"""The first of anchor + k * interval (k >= 1) after `after`; aware datetimes in, UTC out."""
	elapsed = (after - anchor).total_seconds()
	steps = max(0, int(elapsed // interval)) + 1
	return (anchor + timedelta(seconds=steps * interval)).astimezone(timezone.utc)
