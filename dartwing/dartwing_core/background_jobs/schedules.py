"""Job Schedules: recurring jobs from a cron expression (in a time zone) or an interval.

The rules for a schedule's row (checked as a submit checks a job, before anything is written), its
next run times, and the actions on it. The scheduler's tick turns due schedules into jobs
(schedule_tick.py). Times in rows are naive in the engine's zone, as every stored datetime."""

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from . import timing
from .engine import check_name
from .errors import NotFound, ValidationError
from .ports import organization_scope
from .transitions import JOB, new_name

if TYPE_CHECKING:
	from .engine import Engine

SCHEDULE = "Job Schedule"
OVERLAP_POLICIES = ("Skip", "Allow")
MISFIRE_POLICIES = ("Run Once", "Skip")
# Fields a caller may set; the rest (next_run_at, last_run_at, last_job, owner_user) are the engine's.
EDITABLE = (
	"job_type",
	"organization",
	"parameters",
	"cron",
	"interval_seconds",
	"time_zone",
	"enabled",
	"overlap_policy",
	"misfire_policy",
)
# What moves next_run_at when changed.
TIMING = ("cron", "interval_seconds", "time_zone", "enabled")


def prepare(
	engine: "Engine", values: dict, *, user: str, roles: set[str] | None, current: dict | None = None
) -> dict:
	"""The row to write for a new schedule (`current` None) or a change to one: every field
	checked, cron and time zone normalized, next_run_at computed. Raises ValidationError naming
	the field; the caller writes nothing then. `roles` as for submit (None: trusted code)."""
	unknown = set(values) - set(EDITABLE)
	if unknown:
		raise ValidationError(sorted(unknown)[0], "is not a field of a job schedule one may set")
	row = {**(current or {}), **values}
	job_type_row = engine.job_type_for_submit(row.get("job_type"), roles)
	params = engine.checked_parameters(row.get("parameters"), job_type_row)
	# Its jobs take the job type's default priority: Critical only for the roles allowed it.
	engine.priority_for_submit(None, job_type_row, roles)
	org = engine.organization_for_submit(row.get("organization"))
	cron, interval = row.get("cron") or None, row.get("interval_seconds") or None
	if (cron is None) == (interval is None):
		raise ValidationError("cron", "give a cron expression or an interval_seconds, one of them")
	if cron is not None:
		cron = timing.check_cron(cron)
	else:
		interval = _interval(engine, interval)
	tz = timing.zone(row.get("time_zone") or "UTC")
	overlap = row.get("overlap_policy") or "Skip"
	if overlap not in OVERLAP_POLICIES:
		raise ValidationError(
			"overlap_policy", f"must be one of {', '.join(OVERLAP_POLICIES)}, not {overlap!r}"
		)
	misfire = row.get("misfire_policy") or "Run Once"
	if misfire not in MISFIRE_POLICIES:
		raise ValidationError(
			"misfire_policy", f"must be one of {', '.join(MISFIRE_POLICIES)}, not {misfire!r}"
		)
	enabled = row.get("enabled", 1)
	if enabled not in (0, 1, True, False, "0", "1"):
		raise ValidationError("enabled", f"must be 0 or 1, not {enabled!r}")
	now = engine.now()
	prepared = {
		"job_type": job_type_row["name"],
		"organization": org["name"],
		"parameters": json.dumps(params, sort_keys=True),
		"cron": cron,
		"interval_seconds": interval or 0,  # 0: none (Frappe's Int columns are NOT NULL)
		"time_zone": tz.key,
		"enabled": int(enabled in (1, True, "1")),
		"overlap_policy": overlap,
		"misfire_policy": misfire,
		"modified": now,
		"modified_by": user,
	}
	if current is None:
		check_name("user", user)
		prepared.update(name=new_name(), owner=user, owner_user=user, creation=now)
	retimed = current is None or any(prepared[f] != current.get(f) for f in TIMING)
	if retimed:
		anchor = current["creation"] if current else now
		prepared["next_run_at"] = (
			next_run(engine, {**prepared, "creation": anchor}, now) if prepared["enabled"] else None
		)
	return prepared


def _interval(engine: "Engine", value) -> int:
	try:
		seconds = int(value)
	except (TypeError, ValueError):
		raise ValidationError(
			"interval_seconds", f"must be a whole number of seconds, not {value!r}"
		) from None
	if seconds != value and str(seconds) != str(value).strip():
		raise ValidationError("interval_seconds", f"must be a whole number of seconds, not {value!r}")
	least = engine.settings.scheduler_interval
	if seconds < least:
		raise ValidationError(
			"interval_seconds", f"must be at least the scheduler's interval ({least:g} s), not {seconds}"
		)
	return seconds


def _aware(engine: "Engine", value: datetime) -> datetime:
	return value.replace(tzinfo=engine.tz)


def _stored(engine: "Engine", value: datetime) -> datetime:
	return value.astimezone(engine.tz).replace(tzinfo=None)


def next_run(engine: "Engine", schedule: dict, after: datetime) -> datetime:
	"""The schedule's first due time after `after` (both naive in the engine's zone)."""
	moment = _aware(engine, after)
	if schedule.get("cron"):
		found = timing.next_cron(schedule["cron"], timing.zone(schedule["time_zone"]), moment)
	else:
		anchor = _aware(engine, schedule["creation"])
		found = timing.next_interval(float(schedule["interval_seconds"]), anchor, moment)
	return _stored(engine, found)


def latest_due(engine: "Engine", schedule: dict, now: datetime) -> tuple[datetime, datetime]:
	"""The schedule's last due time at or before `now`, starting from its next_run_at (which is
	due), and the one after it. Walks one due time at a time, jumping ahead after a long downtime."""
	due = schedule["next_run_at"]
	for _ in range(1000):
		following = next_run(engine, schedule, due)
		if following > now:
			return due, following
		due = following
	# Down for more than 1000 runs: start again from shortly before now (the runs skipped in
	# between are coalesced anyway).
	return latest_due(engine, {**schedule, "next_run_at": _recent_due(engine, schedule, now)}, now)


def _recent_due(engine: "Engine", schedule: dict, now: datetime) -> datetime:
	back = timedelta(hours=1)
	while True:
		due = next_run(engine, schedule, now - back)
		if due <= now:
			return due
		back *= 2


def upcoming(engine: "Engine", schedule: dict, count: int = 5) -> list[datetime]:
	"""The next `count` due times (naive, engine's zone), for the desk and the CLI."""
	times, after = [], engine.now()
	if not schedule.get("enabled"):
		return []
	if schedule.get("next_run_at"):
		times.append(schedule["next_run_at"])
		after = schedule["next_run_at"]
	while len(times) < count:
		after = next_run(engine, schedule, after)
		times.append(after)
	return times


def get(engine: "Engine", name) -> dict:
	schedule = engine.store.get(SCHEDULE, name) if isinstance(name, str) and name else None
	if schedule is None:
		raise NotFound(f"job schedule {name!r} not found")
	return schedule


def add(
	engine: "Engine", values: dict, *, user: str = "Administrator", roles: set[str] | None = None
) -> dict:
	row = prepare(engine, values, user=user, roles=roles)
	engine.store.insert(SCHEDULE, row)
	return row


def set_enabled(engine: "Engine", name: str, enabled: bool, *, user: str = "Administrator") -> dict:
	"""Pause or resume. Resuming starts from now: runs due while paused are not made up."""
	schedule = get(engine, name)
	if bool(schedule["enabled"]) == enabled:
		return schedule
	values = {
		"enabled": int(enabled),
		"next_run_at": next_run(engine, schedule, engine.now()) if enabled else None,
		"modified": engine.now(),
		"modified_by": user,
	}
	engine.store.update(SCHEDULE, name, values)
	return {**schedule, **values}


def delete(engine: "Engine", name: str) -> None:
	"""The schedule goes; the jobs it created stay, with their history (see unlink_jobs)."""
	get(engine, name)
	with engine.store.transaction():
		unlink_jobs(engine, name)
		engine.store.delete(SCHEDULE, [("name", "=", name)])
		engine.store.delete_references(SCHEDULE, [name])  # on Frappe: its comments, files, shares


def unlink_jobs(engine: "Engine", name: str) -> int:
	"""The jobs of a schedule being deleted stop pointing at it: a link to nothing would lead the
	desk nowhere, and Frappe refuses to delete a document others link to. Each keeps the schedule's
	name and due time in schedule_key. The number of jobs unlinked."""
	return engine.store.update_all(JOB, [("schedule", "=", name)], {"schedule": None})


def jobs_of(engine: "Engine", name: str, limit: int = 20) -> list[dict]:
	return engine.store.get_all(JOB, [("schedule", "=", name)], order_by="creation desc", limit=limit)


def list_schedules(
	engine: "Engine",
	organization: str | None = None,
	organizations: list[str] | None = None,
	limit: int = 100,
) -> list[dict]:
	"""Newest first. `organizations` bounds what the caller may see (None: all)."""
	check_name("organization", organization, required=False)
	filters = organization_scope(organization, organizations)
	return engine.store.get_all(SCHEDULE, filters, order_by="creation desc", limit=limit)


def run_now(engine: "Engine", name: str, *, user: str = "Administrator") -> dict:
	"""A job of the schedule now, whatever its next run time and overlap policy (an explicit ask)."""
	from .schedule_tick import create_job

	return engine.to_api(create_job(engine, get(engine, name), actor=user))
