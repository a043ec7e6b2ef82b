"""Job Schedules on real databases: one job per schedule and due time with two schedulers racing,
overlap and misfire policies, DST nights, bad input refused with nothing written, the actions."""

import itertools
import threading
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from dartwing.dartwing_core.background_jobs import admin, schedules
from dartwing.dartwing_core.background_jobs.backends.standalone import build_engine
from dartwing.dartwing_core.background_jobs.errors import NotFound, ValidationError
from dartwing.dartwing_core.background_jobs.executor import execute
from dartwing.dartwing_core.background_jobs.schedule_tick import run_schedules
from dartwing.dartwing_core.background_jobs.schedules import SCHEDULE
from dartwing.dartwing_core.background_jobs.transitions import JOB, LOG
from tests.conftest import REDIS_URL

START = datetime(2026, 12, 7, 10, 0)  # naive UTC, as the standalone store keeps times


class Clock:
	"""A wall clock the test moves, shared by every engine it is given to."""

	def __init__(self, now: datetime):
		self.now = now

	def __call__(self) -> datetime:
		return self.now


def add(engine, **values) -> dict:
	defaults = {"job_type": "t_echo", "organization": "Acme", "parameters": {"value": values.pop("value", 1)}}
	return schedules.add(engine, {**defaults, **values})


def due_times(engine, schedule: dict) -> list[datetime]:
	"""The due times of the jobs a schedule created, from their schedule_key, in order."""
	rows = engine.store.get_all(JOB, [("schedule", "=", schedule["name"])], ["schedule_key"])
	return sorted(datetime.fromisoformat(r["schedule_key"].split("@", 1)[1]) for r in rows)


def race(engines, task) -> list:
	"""Run `task(engine)` in one thread per engine, released at the same moment."""
	barrier, results, errors = threading.Barrier(len(engines), timeout=30), [], []

	def run(engine):
		try:
			barrier.wait()
			results.append(task(engine))
		except BaseException as exc:
			errors.append(exc)

	threads = [threading.Thread(target=run, args=(e,)) for e in engines]
	for thread in threads:
		thread.start()
	for thread in threads:
		thread.join(timeout=60)
	assert not errors, errors
	return results


@pytest.fixture
def clocked(any_engine):
	"""The engine on its database, and a second engine on the same database (another scheduler,
	with its own connections), both on one clock the test moves."""
	clock = Clock(START)
	other = build_engine(any_engine.store.url, REDIS_URL, any_engine.settings)
	for engine in (any_engine, other):
		engine.now = clock
	yield any_engine, other, clock
	other.store.engine.dispose()


def test_two_schedulers_over_an_hour_of_cron_minutes_create_each_due_job_once(clocked):
	engine, other, clock = clocked
	every_minute = add(engine, cron="* * * * *", overlap_policy="Allow", value="m")
	every_five = add(engine, cron="*/5 * * * *", overlap_policy="Allow", value="5")
	at_seven = add(engine, cron="7 * * * *", overlap_policy="Allow", value="7")
	every_ten = add(engine, interval_seconds=600, overlap_policy="Allow", value="i")

	created = 0
	for minute in range(61):
		clock.now = START + timedelta(minutes=minute, seconds=3)
		# Both at once, without the Redis lock between them: only the database decides.
		created += sum(race([engine, other], run_schedules.__wrapped__))

	minutes = [START + timedelta(minutes=m) for m in range(1, 61)]
	assert due_times(engine, every_minute) == minutes
	assert due_times(engine, every_five) == [t for t in minutes if t.minute % 5 == 0]
	assert due_times(engine, at_seven) == [START.replace(minute=7)]
	assert due_times(engine, every_ten) == [t for t in minutes if t.minute % 10 == 0]
	assert created == engine.store.count(JOB) == 60 + 12 + 1 + 6
	assert sum(engine.queue.depth().values()) == created, "one message per job"
	job = engine.store.get_all(JOB, [("schedule", "=", every_minute["name"])], limit=1)[0]
	assert engine.history(job["name"])["chain_valid"]


def test_a_schedules_new_job_is_announced_to_its_organizations_watchers(clocked):
	engine, _, clock = clocked
	schedule = add(engine, cron="* * * * *")
	stream = engine.events.subscribe(organization="Acme", idle=0.2)
	assert next(stream) is None  # subscribed: what is published from here on is heard

	clock.now += timedelta(minutes=1)
	assert run_schedules(engine) == 1

	job = engine.store.get_all(JOB, [("schedule", "=", schedule["name"])])[0]
	heard = next((e for e in itertools.islice(stream, 50) if e is not None), None)  # 10 s at most
	assert heard is not None, "no event within 10 s"
	assert (heard["event"], heard["job_id"], heard["status"]) == ("job_status_changed", job["name"], "Queued")
	stream.close()


def test_the_database_refuses_a_second_job_for_a_schedule_and_due_time(clocked):
	"""Not the lock, not the compare-and-set: a schedule set back to a due time it has run
	(an edit, a restore) still gets no second job, because schedule_key is unique."""
	engine, _, clock = clocked
	schedule = add(engine, cron="*/10 * * * *", overlap_policy="Allow")
	clock.now = START + timedelta(minutes=10, seconds=1)
	assert run_schedules(engine) == 1
	engine.store.update(SCHEDULE, schedule["name"], {"next_run_at": START + timedelta(minutes=10)})

	assert run_schedules(engine) == 0

	assert due_times(engine, schedule) == [START + timedelta(minutes=10)]
	assert engine.store.get(SCHEDULE, schedule["name"])["next_run_at"] == START + timedelta(minutes=20)
	indexes = sa.inspect(engine.store.engine).get_indexes(f"tab{JOB}")
	assert any(ix["column_names"] == ["schedule_key"] and ix["unique"] for ix in indexes) or any(
		c["column_names"] == ["schedule_key"]
		for c in sa.inspect(engine.store.engine).get_unique_constraints(f"tab{JOB}")
	)


def test_overlap_skip_waits_for_the_last_job_and_allow_does_not(clocked):
	engine, _, clock = clocked
	skip = add(engine, cron="* * * * *", value="skip")
	allow = add(engine, cron="* * * * *", overlap_policy="Allow", value="allow")

	for minute in (1, 2):
		clock.now = START + timedelta(minutes=minute, seconds=1)
		run_schedules(engine)
	assert len(due_times(engine, skip)) == 1, "minute 2 skipped: minute 1's job is still Queued"
	assert len(due_times(engine, allow)) == 2

	first = engine.store.get(SCHEDULE, skip["name"])["last_job"]
	assert execute(engine, first, engine.get_job(first)["queue_job_id"]) == "Completed"
	clock.now = START + timedelta(minutes=3, seconds=1)
	run_schedules(engine)

	assert due_times(engine, skip) == [START + timedelta(minutes=1), START + timedelta(minutes=3)]


@pytest.mark.parametrize(("policy", "expected"), [("Run Once", 1), ("Skip", 0)])
def test_after_downtime_run_once_coalesces_the_missed_runs_and_skip_drops_them(engine, policy, expected):
	clock = Clock(START)
	engine.now = clock
	schedule = add(engine, cron="0 * * * *", misfire_policy=policy)

	clock.now = START + timedelta(hours=3, minutes=30)  # down from 10:00 to 13:30: 11, 12, 13 missed
	run_schedules(engine)

	assert due_times(engine, schedule) == [START.replace(hour=13)] * expected
	assert engine.store.get(SCHEDULE, schedule["name"])["next_run_at"] == START.replace(hour=14)


def test_a_run_found_on_time_runs_under_either_misfire_policy(engine):
	clock = Clock(START)
	engine.now = clock
	schedule = add(engine, cron="0 * * * *", misfire_policy="Skip")
	clock.now = START + timedelta(hours=1, seconds=20)

	assert run_schedules(engine) == 1
	assert due_times(engine, schedule) == [START.replace(hour=11)]


def test_dst_nights_in_the_schedules_time_zone(engine):
	"""New York falls back on 2026-11-01 (01:00-01:59 twice). Ticks every 5 simulated minutes."""
	start = datetime(2026, 11, 1, 3, 0)  # 23:00 EDT the evening before
	clock = Clock(start)
	engine.now = clock
	half_hourly = add(
		engine, cron="*/30 * * * *", time_zone="America/New_York", overlap_policy="Allow", value="h"
	)
	daily = add(engine, cron="30 1 * * *", time_zone="America/New_York", overlap_policy="Allow", value="d")
	for step in range(1, 12 * 6 + 1):
		clock.now = start + timedelta(minutes=5 * step)
		run_schedules(engine)

	# Every 30 minutes of real time, the repeated hour included; 01:30 once (05:30 UTC, EDT).
	assert due_times(engine, half_hourly) == [start + timedelta(minutes=30 * k) for k in range(1, 13)]
	assert due_times(engine, daily) == [datetime(2026, 11, 1, 5, 30)]


def test_spring_forward_runs_a_skipped_time_once(engine):
	start = datetime(2026, 3, 8, 5, 0)  # 00:00 EST; at 02:00 EST the clock jumps to 03:00 EDT
	clock = Clock(start)
	engine.now = clock
	daily = add(engine, cron="30 2 * * *", time_zone="America/New_York")
	for step in range(1, 5 * 12 + 1):
		clock.now = start + timedelta(minutes=5 * step)
		run_schedules(engine)

	assert due_times(engine, daily) == [datetime(2026, 3, 8, 7, 30)]  # 03:30 EDT


@pytest.mark.parametrize(
	("values", "field", "problem"),
	[
		({"cron": "0 0 30 2 *"}, "cron", "matches no date"),
		({"cron": "0 25 * * *"}, "cron", "not a valid cron"),
		({"cron": "0 * * * * *"}, "cron", "5 fields"),
		({"cron": "0 * * * *", "time_zone": "Mars/Olympus"}, "time_zone", "unknown time zone"),
		({"interval_seconds": 30}, "interval_seconds", "at least the scheduler's interval (60 s)"),
		({"interval_seconds": "often"}, "interval_seconds", "whole number"),
		({}, "cron", "one of them"),
		({"cron": "0 * * * *", "interval_seconds": 600}, "cron", "one of them"),
		({"cron": "0 * * * *", "parameters": {"nope": 1}}, "parameters", "do not fit handler"),
		({"cron": "0 * * * *", "job_type": "t_disabled"}, "job_type", "disabled"),
		({"cron": "0 * * * *", "job_type": "no_such_type"}, "job_type", "unknown job type"),
		({"cron": "0 * * * *", "organization": "Umbrella"}, "organization", "unknown organization"),
		({"cron": "0 * * * *", "overlap_policy": "Sometimes"}, "overlap_policy", "must be one of"),
		({"cron": "0 * * * *", "misfire_policy": "Later"}, "misfire_policy", "must be one of"),
		({"cron": "0 * * * *", "next_run_at": START}, "next_run_at", "not a field"),
	],
)
def test_bad_schedules_name_the_field_and_write_nothing(engine, values, field, problem):
	engine.settings = replace(engine.settings, scheduler_interval=60)  # a bench's per-minute tick
	engine.store.insert(
		"Job Type", {"name": "t_disabled", "type_name": "t_disabled", "handler": "t_echo", "is_enabled": 0}
	)
	values = {"job_type": "t_echo", "organization": "Acme", "parameters": {"value": 1}, **values}

	with pytest.raises(ValidationError) as error:
		schedules.add(engine, values)

	assert error.value.field == field
	assert problem in error.value.problem
	assert engine.store.count(SCHEDULE) == 0


def test_pause_resume_run_now_and_delete(engine):
	clock = Clock(START)
	engine.now = clock
	schedule = add(engine, cron="0 * * * *")
	assert [str(t) for t in schedules.upcoming(engine, schedule)][:2] == [
		"2026-12-07 11:00:00",
		"2026-12-07 12:00:00",
	]

	paused = schedules.set_enabled(engine, schedule["name"], False)
	clock.now = START + timedelta(hours=3, minutes=5)
	assert run_schedules(engine) == 0
	resumed = schedules.set_enabled(engine, schedule["name"], True)

	assert paused["next_run_at"] is None and not paused["enabled"]
	assert resumed["next_run_at"] == START.replace(hour=14), "runs due while paused are not made up"
	job = schedules.run_now(engine, schedule["name"], user="ops")
	assert job["status"] == "Queued" and job["triggered_by"] == "schedule"
	row = engine.store.get(SCHEDULE, schedule["name"])
	assert row["last_job"] == job["job_id"] and row["next_run_at"] == START.replace(hour=14)
	assert [j["name"] for j in schedules.jobs_of(engine, schedule["name"])] == [job["job_id"]]
	assert engine.history(job["job_id"])["entries"][0]["actor"] == "ops"

	schedules.delete(engine, schedule["name"])
	with pytest.raises(NotFound):
		schedules.get(engine, schedule["name"])
	kept = engine.store.get(JOB, job["job_id"])
	assert kept["status"] == "Queued", "its jobs stay"
	assert kept["schedule"] is None, "unlinked: nothing points at the deleted schedule"
	assert kept["schedule_key"].startswith(f"{schedule['name']}@"), "the key still names it"


def test_runs_of_a_suspended_organization_or_disabled_type_are_skipped_and_the_schedule_moves_on(engine):
	clock = Clock(START)
	engine.now = clock
	admin.add_organization(engine, "Sleepy")
	schedule = add(engine, cron="*/5 * * * *", organization="Sleepy")
	admin.set_organization_status(engine, "Sleepy", "Suspended")
	clock.now = START + timedelta(minutes=5, seconds=1)

	assert run_schedules(engine) == 0

	assert engine.store.get(SCHEDULE, schedule["name"])["next_run_at"] == START + timedelta(minutes=10)
	assert engine.store.count(JOB) == engine.store.count(LOG) == 0


def test_list_is_bounded_by_organization(engine):
	add(engine, cron="0 * * * *", organization="Acme")
	add(engine, cron="0 * * * *", organization="Globex")

	assert {s["organization"] for s in schedules.list_schedules(engine)} == {"Acme", "Globex"}
	assert {s["organization"] for s in schedules.list_schedules(engine, organizations=["Globex"])} == {
		"Globex"
	}
