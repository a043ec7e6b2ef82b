"""Run later: submit(run_at=..., delay=...) keeps a job Scheduled until due, then the scheduler's
tick queues it once, however many schedulers run; bad times are refused naming the field."""

import json
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from dartwing.dartwing_core.background_jobs import admin, scheduler
from dartwing.dartwing_core.background_jobs.backends.standalone import build_engine
from dartwing.dartwing_core.background_jobs.errors import DuplicateJob, QueueFull, ValidationError
from dartwing.dartwing_core.background_jobs.transitions import JOB, LOG
from tests.conftest import CLI, REDIS_URL, process_env, statuses


def later(engine, hours: float):
	"""Move the engine's clock `hours` ahead, as time passing would."""
	real = engine.now
	engine.now = lambda: real() + timedelta(hours=hours)


def queued_from_scheduled(engine, job_id: str) -> int:
	entries = engine.history(job_id)["entries"]
	return sum(1 for e in entries if (e["from_status"], e["to_status"]) == ("Scheduled", "Queued"))


def test_delayed_job_is_scheduled_listed_counted_and_queued_once_due(any_engine):
	engine = any_engine
	job = engine.submit("t_echo", "Acme", {"value": 1}, delay="1h")

	assert job["status"] == "Scheduled"
	run_at = datetime.fromisoformat(job["run_at"])
	assert abs((run_at - datetime.now(timezone.utc)).total_seconds() - 3600) < 60
	assert sum(engine.queue.depth().values()) == 0, "nothing on the queue before it is due"
	assert engine.list_jobs(status="Scheduled")["total"] == 1
	with pytest.raises(DuplicateJob) as duplicate:  # an unfinished job: the duplicate guard counts it
		engine.submit("t_echo", "Acme", {"value": 1})
	assert duplicate.value.existing_job == job["job_id"]
	assert scheduler.queue_scheduled(engine) == 0, "not due yet"

	later(engine, 2)
	assert scheduler.queue_scheduled(engine) == 1
	assert engine.status(job["job_id"])["status"] == "Queued"
	assert sum(engine.queue.depth().values()) == 1
	assert statuses(engine, job["job_id"]) == ["Scheduled", "Queued"]
	assert engine.history(job["job_id"])["chain_valid"]
	assert scheduler.queue_scheduled(engine) == 0


def test_scheduled_jobs_count_against_the_queue_limit_and_can_be_canceled(engine):
	admin.add_organization(engine, "Small", max_queued_jobs=1)
	job = engine.submit("t_echo", "Small", {"value": 1}, delay=600)
	with pytest.raises(QueueFull):
		engine.submit("t_echo", "Small", {"value": 2})

	canceled = engine.cancel(job["job_id"])

	assert canceled["status"] == "Canceled"
	later(engine, 1)
	assert scheduler.queue_scheduled(engine) == 0
	assert sum(engine.queue.depth().values()) == 0
	assert engine.submit("t_echo", "Small", {"value": 2})["status"] == "Queued"


def test_run_at_in_the_past_runs_now(engine):
	job = engine.submit("t_echo", "Acme", {"value": 1}, run_at="2020-01-01T00:00:00+02:00")

	assert job["status"] == "Queued"
	assert sum(engine.queue.depth().values()) == 1


def test_run_at_with_an_offset_is_kept_as_that_instant(engine):
	due = (datetime.now(timezone.utc) + timedelta(days=3)).replace(microsecond=0)
	text = due.astimezone(timezone(timedelta(hours=-5))).isoformat()

	job = engine.submit("t_echo", "Acme", {}, run_at=text)

	assert datetime.fromisoformat(job["run_at"]) == due


@pytest.mark.parametrize(
	("when", "field", "problem"),
	[
		({"run_at": "tomorrow"}, "run_at", "not an ISO 8601"),
		({"run_at": "2030-01-01T10:00:00"}, "run_at", "needs a UTC offset"),
		({"run_at": "2099-01-01T00:00:00Z"}, "run_at", "more than 365 days ahead"),
		({"delay": 400 * 86400}, "delay", "more than 365 days ahead"),
		({"delay": "soon"}, "delay", "not a duration"),
		({"delay": -5}, "delay", "zero or more"),
		({"delay": 10, "run_at": "2030-01-01T00:00:00Z"}, "run_at", "not both"),
	],
)
def test_bad_times_name_the_field_and_write_nothing(engine, when, field, problem):
	with pytest.raises(ValidationError) as error:
		engine.submit("t_echo", "Acme", {}, **when)

	assert error.value.field == field
	assert problem in error.value.problem
	assert (engine.store.count(JOB), engine.store.count(LOG)) == (0, 0)


def test_a_due_job_waiting_on_its_parent_becomes_pending_and_runs_after_it(engine):
	parent = engine.submit("t_echo", "Acme", {"value": "parent"})
	child = engine.submit("t_echo", "Acme", {"value": "child"}, depends_on=parent["job_id"], delay=60)
	assert child["status"] == "Scheduled"

	later(engine, 1)
	scheduler.queue_scheduled(engine)

	assert engine.status(child["job_id"])["status"] == "Pending"


def test_due_jobs_of_an_organization_at_its_in_flight_limit_wait_scheduled(engine):
	admin.add_organization(engine, "Narrow", max_in_flight_jobs=1)
	ids = [engine.submit("t_echo", "Narrow", {"value": i}, delay=60)["job_id"] for i in range(3)]

	later(engine, 1)
	assert scheduler.queue_scheduled(engine) == 1

	assert sorted(engine.status(i)["status"] for i in ids) == ["Queued", "Scheduled", "Scheduled"]


def test_two_schedulers_queue_each_job_due_in_the_same_second_once(any_engine):
	"""Two engines (two connection pools, as two machines) run the task at the same moment,
	without the lock between them: only the compare-and-set decides."""
	count = 60
	ids = [any_engine.submit("t_echo", "Acme", {"value": i}, delay=30)["job_id"] for i in range(count)]
	other = build_engine(any_engine.store.url, REDIS_URL, any_engine.settings)
	for each in (any_engine, other):
		later(each, 1)
	barrier, moved = threading.Barrier(2, timeout=30), []

	def run(engine):
		barrier.wait()
		moved.append(scheduler.queue_scheduled.__wrapped__(engine))

	threads = [threading.Thread(target=run, args=(each,)) for each in (any_engine, other)]
	for thread in threads:
		thread.start()
	for thread in threads:
		thread.join(timeout=60)
	other.store.engine.dispose()

	assert sum(moved) == count
	assert [queued_from_scheduled(any_engine, i) for i in ids] == [1] * count
	assert sum(any_engine.queue.depth().values()) == count, "one message per job"


def test_two_scheduler_processes_queue_a_job_due_now_once(engine):
	job = engine.submit("t_echo", "Acme", {"value": 1}, delay=0.5)
	assert job["status"] == "Scheduled"
	time.sleep(0.6)
	command = [*CLI, "scheduler", "--once", "--json"]
	procs = [
		subprocess.Popen(
			command, env=process_env(engine), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
		)
		for _ in range(2)
	]
	outputs = [proc.communicate(timeout=60) for proc in procs]

	assert [proc.returncode for proc in procs] == [0, 0], [err[-2000:] for _, err in outputs]
	assert sum(json.loads(out)["queue_scheduled"] or 0 for out, _ in outputs) == 1
	assert queued_from_scheduled(engine, job["job_id"]) == 1
	assert sum(engine.queue.depth().values()) == 1


def test_the_due_query_has_an_index_on_status_and_run_at(any_engine):
	"""The tick's read must stay an index range scan however many jobs are Scheduled."""
	indexes = sa.inspect(any_engine.store.engine).get_indexes(f"tab{JOB}")

	assert ("status", "run_at") in {tuple(index["column_names"]) for index in indexes}
