"""The scheduler's periodic work acts once however many schedulers run, under a Redis lock that only
its holder releases; and a suspended organization's jobs wait until it is active again."""

import json
import subprocess
import threading
import uuid

import pytest
from redis import Redis

from dartwing.dartwing_core.background_jobs import admin, scheduler
from dartwing.dartwing_core.background_jobs.locks import RedisLock, distributed_lock
from tests.conftest import CLI, process_env, run_worker_burst, wait_until

DUE = 30


def make_due_retries(engine) -> list[str]:
	"""DUE jobs in Failed with their retry due now: t_flaky (base_delay 0) failed its first attempt.
	One organization each, since equal jobs of one organization would be refused as duplicates."""
	job_ids = []
	for i in range(DUE):
		admin.add_organization(engine, f"Tenant {i:02d}")
		job_ids.append(engine.submit("t_flaky", f"Tenant {i:02d}", {"failures": 1})["job_id"])
	run_worker_burst(engine, "--workers", "4", timeout=120)
	rows = [engine.status(job_id) for job_id in job_ids]
	assert {(r["status"], r["retry_count"]) for r in rows} == {("Failed", 1)}
	assert all(r["next_retry_at"] for r in rows)
	return job_ids


def assert_each_requeued_once(engine, job_ids: list[str]) -> None:
	for job_id in job_ids:
		entries = engine.history(job_id)["entries"]
		requeued = [e for e in entries if (e["from_status"], e["to_status"]) == ("Failed", "Queued")]
		assert len(requeued) == 1, f"job {job_id} was requeued {len(requeued)} times"
		assert engine.status(job_id)["status"] == "Queued"
	assert sum(engine.queue.depth().values()) == len(job_ids), "one queue message per job"


def test_two_scheduler_processes_requeue_each_due_job_once(any_engine):
	due_retries = make_due_retries(any_engine)
	command = [*CLI, "scheduler", "--once", "--json"]
	env = process_env(any_engine)
	procs = [
		subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
		for _ in range(2)
	]
	outputs = [proc.communicate(timeout=60) for proc in procs]

	assert [proc.returncode for proc in procs] == [0, 0], [err[-2000:] for _, err in outputs]
	reports = [json.loads(out) for out, _ in outputs]
	# each process either did the work, found nothing left, or skipped it (None: lock held)
	assert sum(r["requeue_due_retries"] or 0 for r in reports) == DUE
	assert_each_requeued_once(any_engine, due_retries)


def test_two_scheduler_threads_ticking_together_requeue_each_due_job_once(engine):
	due_retries = make_due_retries(engine)
	barrier = threading.Barrier(2, timeout=30)
	reports = []

	def tick():
		barrier.wait()
		reports.append(scheduler.tick(engine))

	threads = [threading.Thread(target=tick) for _ in range(2)]
	for thread in threads:
		thread.start()
	for thread in threads:
		thread.join(timeout=60)
	assert not any(thread.is_alive() for thread in threads)

	assert len(reports) == 2
	assert sum(r["requeue_due_retries"] or 0 for r in reports) == DUE
	assert "error" not in [value for r in reports for value in r.values()]
	assert_each_requeued_once(engine, due_retries)


@pytest.fixture
def lock_redis(redis_url):
	client = Redis.from_url(redis_url)
	name = f"test-lock-{uuid.uuid4().hex[:8]}"
	yield client, name, f"dartwing:lock:{name}"
	client.delete(f"dartwing:lock:{name}")
	client.close()


def test_lock_runs_the_task_once_while_it_is_held(lock_redis):
	client, name, key = lock_redis
	entered, finish = threading.Event(), threading.Event()
	calls, results = [], []

	@distributed_lock(name, ttl=30, client=lambda: client)
	def task():
		calls.append(1)
		entered.set()
		assert finish.wait(10)
		return "ran"

	first = threading.Thread(target=lambda: results.append(task()))
	first.start()
	try:
		assert entered.wait(10)
		# a second scheduler arriving while the first holds the lock skips the task
		assert task() is None
	finally:
		finish.set()
		first.join(timeout=10)
	assert results == ["ran"]
	assert len(calls) == 1
	# released afterwards: the next run goes ahead
	assert not client.exists(key)
	assert task() == "ran"
	assert len(calls) == 2


def test_lock_holder_does_not_release_a_lock_that_expired_and_was_taken_by_another(lock_redis):
	client, name, key = lock_redis
	taken = {}

	@distributed_lock(name, ttl=0.3, client=lambda: client)
	def slow_task():
		# runs longer than its TTL; meanwhile another process takes the lock
		wait_until(lambda: not client.exists(key), 5, "the lock's TTL to lapse")
		taken["lock"] = RedisLock(client, key, ttl=30)
		assert taken["lock"].acquire()
		return "done"

	assert slow_task() == "done"

	assert client.get(key) == taken["lock"].token.encode(), "the other holder's lock was deleted"
	assert slow_task() is None  # still held by the other process


def test_lock_without_release_is_held_until_its_ttl(lock_redis):
	client, name, key = lock_redis
	calls = []

	@distributed_lock(name, ttl=1, client=lambda: client, release=False)
	def daily():
		calls.append(1)
		return len(calls)

	assert daily() == 1
	assert client.pttl(key) > 0
	assert daily() is None  # at most once per TTL
	wait_until(lambda: not client.exists(key), 5, "the lock's TTL to lapse")
	assert daily() == 2


def test_job_of_suspended_organization_waits_then_runs_once_it_is_resumed(engine):
	# Given a queued job whose organization is suspended before a worker gets to it
	job_id = engine.submit("t_echo", "Acme", {"value": "later.txt"})["job_id"]
	admin.set_organization_status(engine, "Acme", "Suspended")

	# Then the worker parks it as Pending, and the scheduler leaves it there
	run_worker_burst(engine)
	assert engine.status(job_id)["status"] == "Pending"
	assert scheduler.tick(engine)["release_pending"] == 0
	assert engine.status(job_id)["status"] == "Pending"

	# When the organization is active again, the scheduler queues it and a worker runs it
	admin.set_organization_status(engine, "Acme", "Active")
	assert scheduler.tick(engine)["release_pending"] == 1
	assert engine.status(job_id)["status"] == "Queued"
	run_worker_burst(engine)

	assert engine.status(job_id)["status"] == "Completed"
	entries = engine.history(job_id)["entries"]
	assert [e["to_status"] for e in entries] == ["Queued", "Pending", "Queued", "Running", "Completed"]
	assert entries[1]["message"] == "Organization Suspended; waiting"
	assert entries[2]["message"] == "Organization active again"
	assert engine.history(job_id)["chain_valid"]
