"""Retention: purge deletes finished jobs older than N days with their logs, in batches, and
purge_daily runs at most once per day across every scheduler."""

from contextlib import contextmanager
from datetime import timedelta

import pytest

from dartwing.dartwing_core.background_jobs import ValidationError, cleanup
from dartwing.dartwing_core.background_jobs.backends.standalone import build_engine
from dartwing.dartwing_core.background_jobs.executor import execute
from dartwing.dartwing_core.background_jobs.transitions import JOB, LOG
from tests.conftest import REDIS_URL


def run_in_process(engine, job_id: str) -> str:
	return execute(engine, job_id, engine.get_job(job_id)["queue_job_id"])


def age(engine, job_id: str, days: float) -> str:
	"""Make the job's last change, and its end if it ended, `days` old."""
	when = engine.now() - timedelta(days=days)
	ended = {"completed_at": when} if engine.get_job(job_id)["completed_at"] else {}
	engine.store.update(JOB, job_id, {"modified": when, **ended})
	return job_id


def make_job(engine, status: str, tag: str) -> str:
	"""A job brought to `status` the way the engine does it."""
	if status == "Completed":
		job_id = engine.submit("t_echo", "Acme", {"value": tag})["job_id"]
		assert run_in_process(engine, job_id) == "Completed"
	elif status == "Canceled":
		job_id = engine.cancel(engine.submit("t_echo", "Acme", {"value": tag})["job_id"])["job_id"]
	elif status == "Dead Letter":
		job_id = engine.submit("t_permanent", "Acme")["job_id"]
		assert run_in_process(engine, job_id) == "Dead Letter"
	elif status == "Queued":
		job_id = engine.submit("t_echo", "Acme", {"value": tag})["job_id"]
	elif status == "Pending":
		parent = engine.submit("t_echo", "Acme", {"value": f"{tag}-parent"})["job_id"]
		job_id = engine.submit("t_echo", "Acme", {"value": tag}, depends_on=parent)["job_id"]
	elif status == "Failed":
		job_id = engine.submit("t_flaky", "Acme", {"failures": 5})["job_id"]
		assert run_in_process(engine, job_id) == "Failed"
	elif status == "Timed Out":
		job_id = engine.submit("t_sleep", "Acme", {"seconds": 5})["job_id"]
		assert run_in_process(engine, job_id) == "Timed Out"
	assert engine.get_job(job_id)["status"] == status
	return job_id


def log_count(engine, job_ids) -> int:
	return engine.store.count(LOG, [("background_job", "in", list(job_ids))])


def exists(engine, job_id: str) -> bool:
	return engine.store.get(JOB, job_id) is not None


def test_purge_deletes_old_finished_jobs_with_their_logs_only(engine):
	old_finished = [
		age(engine, make_job(engine, s, f"old-{s}"), 40) for s in ("Completed", "Canceled", "Dead Letter")
	]
	young_finished = [
		age(engine, make_job(engine, s, f"young-{s}"), 10) for s in ("Completed", "Canceled", "Dead Letter")
	]
	old_unfinished = [
		age(engine, make_job(engine, s, f"old-{s}"), 400)
		for s in ("Queued", "Pending", "Failed", "Timed Out")
	]
	assert log_count(engine, old_finished) >= 6
	kept_logs = log_count(engine, young_finished + old_unfinished)

	deleted = cleanup.purge(engine, older_than_days=30)

	assert deleted == 3
	assert not any(exists(engine, job_id) for job_id in old_finished)
	assert log_count(engine, old_finished) == 0
	assert all(exists(engine, job_id) for job_id in young_finished + old_unfinished)
	assert log_count(engine, young_finished + old_unfinished) == kept_logs
	assert all(engine.history(job_id)["chain_valid"] for job_id in young_finished + old_unfinished)


def test_purge_works_through_several_batches(engine):
	old = [age(engine, make_job(engine, "Completed", f"old-{i}"), 31) for i in range(10)]
	young = [age(engine, make_job(engine, "Completed", f"young-{i}"), 29) for i in range(2)]

	deleted = cleanup.purge(engine, older_than_days=30, batch_size=3)

	assert deleted == 10
	assert engine.store.count(JOB) == 2
	assert {row["name"] for row in engine.store.get_all(JOB, fields=["name"])} == set(young)
	assert log_count(engine, old) == 0
	assert engine.store.count(LOG) == log_count(engine, young) == 6


def purge_counting_transactions(engine, **options) -> tuple[int, int]:
	"""(jobs deleted, transactions the purge opened): one transaction is one batch."""
	opened = []
	original = engine.store.transaction

	@contextmanager
	def counted():
		opened.append(1)
		with original():
			yield

	engine.store.transaction = counted
	try:
		return cleanup.purge(engine, older_than_days=30, **options), len(opened)
	finally:
		engine.store.transaction = original


@pytest.mark.parametrize(("lock_budget", "batches"), [(0.0, 17), (60.0, 5)])
def test_purge_batches_shrink_when_they_hold_locks_too_long_and_grow_back(engine, lock_budget, batches):
	# Given 20 old finished jobs and batches of at most 4
	for i in range(20):
		age(engine, make_job(engine, "Canceled", f"old-{i}"), 31)

	deleted, opened = purge_counting_transactions(engine, batch_size=4, lock_budget=lock_budget)

	# No time allowed: 4, then one job a transaction (4 + 16); time enough: 5 batches of 4.
	assert (deleted, opened) == (20, batches)
	assert engine.store.count(JOB) == engine.store.count(LOG) == 0


def test_a_batch_is_sized_from_the_last_ones_time_per_job():
	aim = cleanup.AIM * 0.05  # the seconds a batch aims at, of a 50 ms budget
	assert cleanup.next_size(100, aim, 0.05, 500) == 100  # on target: the same
	assert cleanup.next_size(100, 4 * aim, 0.05, 500) == 25  # four times too long: a quarter
	assert cleanup.next_size(100, aim / 10, 0.05, 500) == 151  # quick: by half at most
	assert cleanup.next_size(400, aim / 10, 0.05, 500) == 500  # never above batch_size
	assert cleanup.next_size(1, 1.0, 0.05, 500) == 1  # nor below one job


def test_purge_goes_by_when_a_job_ended_and_by_its_last_change_if_it_has_no_end_time(engine):
	# A job that ended long ago but was touched since (a note) goes; one canceled before Canceled
	# set completed_at goes by its last change; a recent end stays whatever its last change.
	noted = make_job(engine, "Completed", "noted")
	engine.store.update(JOB, noted, {"completed_at": engine.now() - timedelta(days=40)})
	legacy = age(engine, make_job(engine, "Canceled", "legacy"), 40)
	engine.store.update(JOB, legacy, {"completed_at": None})
	recent = make_job(engine, "Dead Letter", "recent")
	engine.store.update(JOB, recent, {"modified": engine.now() - timedelta(days=40)})

	assert cleanup.purge(engine, older_than_days=30) == 2

	assert not exists(engine, noted) and not exists(engine, legacy)
	assert exists(engine, recent)


def test_purge_defaults_to_the_configured_retention(engine):
	assert engine.settings.purge_after_days == 30
	old = age(engine, make_job(engine, "Canceled", "old"), 31)
	young = age(engine, make_job(engine, "Canceled", "young"), 29)

	assert cleanup.purge(engine) == 1

	assert not exists(engine, old)
	assert exists(engine, young)


def test_purge_with_zero_days_takes_every_finished_job(engine):
	finished = [make_job(engine, s, s) for s in ("Completed", "Canceled", "Dead Letter")]
	waiting = make_job(engine, "Queued", "waiting")

	assert cleanup.purge(engine, older_than_days=0) == 3

	assert not any(exists(engine, job_id) for job_id in finished)
	assert engine.status(waiting)["status"] == "Queued"
	assert cleanup.purge(engine, older_than_days=0) == 0


def test_negative_days_are_refused_and_nothing_is_deleted(engine):
	job_id = age(engine, make_job(engine, "Completed", "kept"), 100)

	with pytest.raises(ValidationError) as raised:
		cleanup.purge(engine, older_than_days=-1)

	assert raised.value.field == "older_than"
	assert exists(engine, job_id)


def test_purge_daily_runs_once_per_ttl_across_callers(engine):
	age(engine, make_job(engine, "Completed", "old"), 45)
	# Another scheduler process: its own engine on the same database, Redis and queue prefix.
	other = build_engine(engine.store.url, REDIS_URL, engine.settings)
	try:
		first = cleanup.purge_daily(engine)
		age(engine, make_job(engine, "Completed", "old-later"), 45)
		second = cleanup.purge_daily(engine)
		from_other = cleanup.purge_daily(other)
	finally:
		other.store.engine.dispose()

	assert first == 1
	assert second is None
	assert from_other is None
	assert engine.store.count(JOB) == 1  # the job aged after the first run waits for tomorrow's
	ttl_ms = engine.lock_client.pttl(f"{engine.settings.queue_prefix}:lock:purge_daily")
	assert 23 * 3600 * 1000 < ttl_ms <= 24 * 3600 * 1000
