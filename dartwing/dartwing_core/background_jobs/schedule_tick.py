"""The scheduler task that turns due Job Schedules into jobs.

Exactly one job per schedule and due time, however many schedulers run at once: the job carries
`schedule_key` (schedule and due time) under a unique index, so the database refuses a second
one, and the schedule's next_run_at moves by compare-and-set in the same transaction as the job's
insert, so a scheduler that lost the race writes nothing. The Redis lock only saves the work.

Due schedules are read a page at a time from the (enabled, next_run_at) index; each page's job
types, organizations and last jobs are read at once, and up to COMMIT_EVERY schedules commit
together (the job, its first log row and the schedule's move), then their jobs are sent in one
pipeline: thousands of schedules due in the same minute cost one tick."""

import json
import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from . import states
from .dependencies import Room, at_flight_limit
from .engine import Engine, canonical_json, first_log, hash_job
from .errors import UniqueViolation
from .locks import distributed_lock
from .ports import Change
from .schedules import SCHEDULE, latest_due
from .serialize import iso
from .transitions import JOB, LOG

if TYPE_CHECKING:
	from .transitions import JobRow

logger = logging.getLogger("dartwing.jobs")
# Schedules committed together. More than the scheduler's 100 job transitions: the rows this
# holds locked are schedules and jobs not sent yet, which no worker waits for.
COMMIT_EVERY = 500
MAX_PAGES = 200  # a tick's bound: batch_size * MAX_PAGES schedules; the rest wait for the next


@distributed_lock("run_schedules", ttl=120)
def run_schedules(engine: Engine) -> int:
	"""Create the jobs of every enabled schedule whose next_run_at has come; the number created."""
	created, now = 0, engine.now()
	for _ in range(MAX_PAGES):
		page = engine.store.get_all(
			SCHEDULE,
			[("enabled", "=", 1), ("next_run_at", "<=", now)],
			order_by="next_run_at asc, name asc",
			limit=engine.settings.batch_size,
		)
		plans = _plan(engine, page, now)
		for i in range(0, len(plans), COMMIT_EVERY):
			created += _commit(engine, plans[i : i + COMMIT_EVERY])
		if len(page) < engine.settings.batch_size:
			break
	return created


class Plan:
	"""What one due schedule does this tick: move next_run_at, and maybe create `job`."""

	__slots__ = ("due", "following", "job", "log", "schedule")

	def __init__(self, schedule: dict, due: datetime | None, following: datetime | None):
		self.schedule, self.due, self.following = schedule, due, following
		self.job: JobRow | None = None
		self.log: dict | None = None


def _plan(engine: Engine, page: list[dict], now: datetime) -> list[Plan]:
	if not page:
		return []
	types = _by_name(engine, "Job Type", {s["job_type"] for s in page})
	orgs = _by_name(engine, "Organization", {s["organization"] for s in page})
	last = {
		row["name"]: row["status"]
		for row in engine.store.get_all(
			JOB,
			[("name", "in", sorted({s["last_job"] for s in page if s.get("last_job")}))],
			["name", "status"],
		)
	}
	room, limits = Room(engine), _Limits(engine, orgs.values())
	grace = timedelta(
		seconds=max(engine.settings.misfire_grace_seconds, 2 * engine.settings.scheduler_interval)
	)
	plans = []
	for schedule in page:
		try:
			due, following = latest_due(engine, schedule, now)
			plan = Plan(schedule, due, following)
		except Exception:  # a row edited into nonsense behind the engine's back: stop it, say why
			logger.exception("Job Schedule %s cannot compute its next run; it stops", schedule["name"])
			plans.append(Plan(schedule, None, None))
			continue
		plans.append(plan)
		reason = _skip_reason(engine, schedule, due, now - due > grace, last, types, orgs, limits)
		if reason:
			logger.info("Job Schedule %s skipped its run of %s: %s", schedule["name"], iso(due), reason)
			continue
		org = orgs[schedule["organization"]]
		status = states.QUEUED if room.has_room(org, adding=limits.queued[org["name"]]) else states.PENDING
		plan.job, plan.log = build_job(
			engine, schedule, due, types[schedule["job_type"]], status, "scheduler"
		)
		limits.count(org["name"], status)
	return plans


def _skip_reason(engine, schedule, due, missed, last, types, orgs, limits) -> str | None:
	if missed and schedule["misfire_policy"] == "Skip":
		return "missed (the scheduler was not running); misfire policy Skip"
	if schedule["overlap_policy"] == "Skip" and last.get(schedule.get("last_job")) in states.UNFINISHED:
		return f"job {schedule['last_job']} is still {last[schedule['last_job']]}; overlap policy Skip"
	job_type = types.get(schedule["job_type"])
	if job_type is None or not job_type["is_enabled"] or engine.handlers.get(job_type["handler"]) is None:
		return f"job type {schedule['job_type']!r} is missing, disabled or has no handler here"
	org = orgs.get(schedule["organization"])
	if org is None or org["status"] != "Active":
		return f"organization {schedule['organization']!r} is missing or not Active"
	if limits.full(org):
		return f"organization {org['name']!r} has {org['max_queued_jobs']} unfinished jobs (its limit)"
	return None


class _Limits:
	"""Each organization's unfinished and in-flight jobs, counted once a page and kept up to date
	with the jobs the page adds (a queue limit is refused, an in-flight limit makes them Pending)."""

	def __init__(self, engine: Engine, orgs):
		limited = sorted(o["name"] for o in orgs if int(o.get("max_queued_jobs") or 0))
		self.unfinished = Counter(
			engine.store.count_by(
				JOB, "organization", [("organization", "in", limited), ("status", "in", states.UNFINISHED)]
			)
			if limited
			else {}
		)
		self.queued: Counter = Counter()  # jobs of this page queued so far, for Room.has_room

	def full(self, org: dict) -> bool:
		limit = int(org.get("max_queued_jobs") or 0)
		return bool(limit) and self.unfinished[org["name"]] >= limit

	def count(self, organization: str, status: str) -> None:
		self.unfinished[organization] += 1
		if status == states.QUEUED:
			self.queued[organization] += 1


def _by_name(engine: Engine, doctype: str, names: set[str]) -> dict[str, dict]:
	return {row["name"]: row for row in engine.store.get_all(doctype, [("name", "in", sorted(names))])}


def build_job(
	engine: Engine, schedule: dict, due: datetime, job_type: dict, status: str, actor: str
) -> tuple[dict, dict]:
	"""The job row of `schedule`'s run due at `due`, and its first log row."""
	now = engine.now()
	canonical = canonical_json(json.loads(schedule.get("parameters") or "{}"))
	key = f"{schedule['name']}@{due.isoformat()}"
	job = Engine.new_job(
		job_type,
		canonical,
		job_type.get("default_priority") or "Normal",
		schedule["owner_user"],
		"schedule",
		now,
		organization=schedule["organization"],
		schedule=schedule["name"],
		schedule_key=key,
	)
	# The due time is part of the hash: runs of one schedule are distinct on purpose (overlap
	# Allow), and the duplicate guard must not refuse them as copies of each other.
	job["job_hash"] = job["active_hash"] = hash_job(job["job_type"], job["organization"], canonical, key)
	log = first_log(
		job, status, now, actor, f"Created by schedule {schedule['name']} for {iso(due, engine.tz)}"
	)
	return job, log


def _commit(engine: Engine, plans: list[Plan]) -> int:
	"""The schedules that create a job move with it and its first log row, all in one transaction
	(on MariaDB one batch of statements); if a job's key exists already (another scheduler, a
	restored next_run_at), each alone, so only that one gives up its job. A schedule whose run is
	skipped just moves on. Then the queued jobs are sent, and every new job's status event
	published (as submit publishes one), each in one pipeline."""
	for plan in plans:
		if plan.job is None:
			_advance(engine, plan)
	creating = [plan for plan in plans if plan.job is not None]
	try:
		won = engine.store.compare_and_set_many(SCHEDULE, [_change(plan) for plan in creating])
	except UniqueViolation:
		won = [_alone(engine, plan) for plan in creating]
	jobs = [plan.job for plan, ok in zip(creating, won, strict=True) if ok]
	engine.dispatch_all([job for job in jobs if job["status"] == states.QUEUED])
	engine.publish_all_status(jobs)
	return len(jobs)


def _change(plan: Plan) -> Change:
	"""Move the schedule on (compare-and-set on the next_run_at it was read with) and, only then,
	insert its job and the job's first log row."""
	return Change(
		plan.schedule["name"],
		{"next_run_at": plan.following, "last_run_at": plan.due, "last_job": plan.job["name"]},
		[("next_run_at", "=", plan.schedule["next_run_at"])],
		(JOB, plan.job),
		((LOG, plan.log),),
	)


def _alone(engine: Engine, plan: Plan) -> bool:
	try:
		return engine.store.compare_and_set_many(SCHEDULE, [_change(plan)])[0]
	except UniqueViolation:
		logger.info("Job Schedule %s: its run of %s exists already", plan.schedule["name"], plan.due)
		_advance(engine, plan)
		return False


def _advance(engine: Engine, plan: Plan) -> bool:
	"""Move the schedule on without a job; False when another scheduler moved it first."""
	expect = [("next_run_at", "=", plan.schedule["next_run_at"])]
	return engine.store.update(SCHEDULE, plan.schedule["name"], {"next_run_at": plan.following}, expect)


def create_job(engine: Engine, schedule: dict, *, actor: str) -> dict:
	"""Run now: one job of the schedule at once, whatever its next run time and overlap policy,
	with submit's checks (job type, organization, queue limit, in-flight limit)."""
	with engine.store.session():
		job_type = engine.job_type_for_submit(schedule["job_type"], None)
		with engine.store.transaction():
			org = engine.organization_for_submit(schedule["organization"])
			engine.refuse_full_queue(org)
			status = states.PENDING if at_flight_limit(engine, org) else states.QUEUED
			job, log = build_job(engine, schedule, engine.now(), job_type, status, actor)
			engine.store.insert(JOB, job)
			engine.store.insert(LOG, log)
			engine.store.update(
				SCHEDULE, schedule["name"], {"last_run_at": engine.now(), "last_job": job["name"]}
			)
	engine.publish_status(job)
	if job["status"] == states.QUEUED:
		engine.dispatch(job)
	return job
