"""The scheduler's periodic work acts once however many schedulers run, under a Redis lock that only
its holder releases; and a suspended organization's jobs wait until it is active again."""

import json
import subprocess
import threading
import time
import uuid
from datetime import timedelta

import pytest
from redis import Redis
from rq.job import Job

from dartwing.dartwing_core.background_jobs import admin, scheduler, states
from dartwing.dartwing_core.background_jobs.backends.sql_store import SqlStore
from dartwing.dartwing_core.background_jobs.executor import execute
from dartwing.dartwing_core.background_jobs.locks import RedisLock, distributed_lock
from dartwing.dartwing_core.background_jobs.transitions import JOB, LOG, transition
from tests.conftest import CLI, dispose, make_db_url, make_engine, process_env, run_worker_burst, wait_until

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


# -- batches: a tick moves many rows in few commits and round trips, with every rule kept ------


def due_now(engine, count: int, organization: str = "Acme") -> list[str]:
	"""`count` t_flaky jobs Failed after their first attempt (run in this process), their retry
	due now, and no message left on the queues."""
	job_ids = [engine.submit("t_flaky", organization, {"failures": 1 + i})["job_id"] for i in range(count)]
	for job_id in job_ids:
		assert execute(engine, job_id, engine.get_job(job_id)["queue_job_id"]) == states.FAILED
		engine.store.update(JOB, job_id, {"next_retry_at": engine.now() - timedelta(seconds=1)})
	for queue in engine.queue.queues.values():
		queue.empty()
	return job_ids


def test_due_retries_of_one_tick_are_sent_once_each_and_only_once_committed(engine):
	job_ids = due_now(engine, 5)
	observer = SqlStore(engine.store.url)  # another connection: it sees only what was committed
	sent = []
	enqueue_many = engine.queue.enqueue_many

	def observed(messages):
		rows = observer.get_all(JOB, [("name", "in", [m.job_id for m in messages])], ["status"])
		sent.append(([m.job_id for m in messages], [r["status"] for r in rows]))
		enqueue_many(messages)

	engine.queue.enqueue_many = observed
	try:
		assert scheduler.requeue_due_retries(engine) == 5
	finally:
		del engine.queue.enqueue_many
		observer.engine.dispose()

	assert sent == [(job_ids, ["Queued"] * 5)], "one dispatch, after the commit"
	assert_each_requeued_once(engine, job_ids)
	assert all(engine.history(job_id)["chain_valid"] for job_id in job_ids)
	assert scheduler.requeue_due_retries(engine) == 0


def test_a_batch_that_fails_midway_writes_and_sends_nothing_until_the_next_tick(engine, monkeypatch):
	job_ids = due_now(engine, 5)
	entries = {job_id: len(engine.history(job_id)["entries"]) for job_id in job_ids}
	insert, inserted = engine.store.insert, []

	def failing_third(doctype, row):
		if doctype == LOG:
			inserted.append(row)
			if len(inserted) == 3:
				raise ConnectionError("the database went away")
		insert(doctype, row)

	# When the third log row of the batch cannot be written
	monkeypatch.setattr(engine.store, "insert", failing_third)
	assert scheduler.tick(engine)["requeue_due_retries"] == "error"
	monkeypatch.undo()

	# Then no job moved, no log row stayed, no message went out
	assert [engine.status(job_id)["status"] for job_id in job_ids] == ["Failed"] * 5
	assert {job_id: len(engine.history(job_id)["entries"]) for job_id in job_ids} == entries
	assert sum(engine.queue.depth().values()) == 0
	# and the next tick does it all
	assert scheduler.tick(engine)["requeue_due_retries"] == 5
	assert_each_requeued_once(engine, job_ids)


def test_a_job_that_changed_since_the_batch_read_it_is_skipped_alone(engine):
	job_ids = due_now(engine, 3)
	read = [engine.get_job(job_id) for job_id in job_ids]
	engine.cancel(job_ids[1])  # after the scheduler read it: its compare-and-set loses

	done = engine.requeue_all([(job, "Retry 1/3") for job in read], actor="scheduler")

	assert [job["name"] for job in done] == [job_ids[0], job_ids[2]]
	assert [engine.status(j)["status"] for j in job_ids] == ["Queued", "Canceled", "Queued"]
	assert [e["to_status"] for e in engine.history(job_ids[1])["entries"]][-1] == "Canceled"
	assert all(engine.history(job_id)["chain_valid"] for job_id in job_ids)
	assert sum(engine.queue.depth().values()) == 2


def test_due_retries_of_one_batch_count_against_their_organizations_limit(engine):
	engine.store.update("Organization", "Acme", {"max_in_flight_jobs": 2})
	job_ids = due_now(engine, 4)
	assert scheduler.requeue_due_retries(engine) == 2  # not 4: the first two fill Acme
	assert [engine.status(j)["status"] for j in job_ids].count("Queued") == 2
	assert scheduler.requeue_due_retries(engine) == 0


def test_release_pending_reads_on_while_pages_release_jobs_up_to_a_batch_a_tick(
	tmp_path, redis_url, monkeypatch
):
	# Given 7 jobs parked Pending while their organization was suspended; pages of 2, batches of 3
	monkeypatch.setattr(scheduler, "BACKSTOP_PAGE", 2)
	engine = make_engine(make_db_url("sqlite", tmp_path), redis_url, batch_size=3)
	try:
		jobs = [engine.submit("t_echo", "Acme", {"value": f"p{i}"})["job_id"] for i in range(7)]
		admin.set_organization_status(engine, "Acme", "Suspended")
		run_worker_burst(engine)
		assert {engine.status(j)["status"] for j in jobs} == {"Pending"}
		admin.set_organization_status(engine, "Acme", "Active")

		# When the scheduler ticks twice
		released = []
		for _ in range(2):
			scheduler.release_pending(engine)
			released.append([j for j in jobs if engine.status(j)["status"] == "Queued"])

		# Then a page that released jobs was followed by the next, oldest first, until a tick had
		# read a batch (2 + 2); the second tick read on to the end (2 + 2 + 1)
		assert released == [jobs[:4], jobs]
		assert not engine.lock_client.exists(f"{engine.settings.queue_prefix}:release_pending:after")
	finally:
		dispose(engine)


def test_redispatch_asks_about_one_page_a_tick_and_goes_round_the_backlog(tmp_path, redis_url, monkeypatch):
	# Given a backlog of 7 jobs legitimately waiting, past the grace period; pages of 2
	monkeypatch.setattr(scheduler, "BACKSTOP_PAGE", 2)
	engine = make_engine(make_db_url("sqlite", tmp_path), redis_url, batch_size=3)
	try:
		for i in range(7):
			engine.submit("t_echo", "Acme", {"value": f"w{i}"})
		time.sleep(engine.settings.requeue_grace_seconds + 0.1)
		asked, waiting = [], engine.queue.waiting
		engine.queue.waiting = lambda ids: asked.append(len(ids)) or waiting(ids)

		# When the scheduler ticks five times
		sent = [scheduler.redispatch_lost(engine) for _ in range(5)]

		# Then each tick asked Redis about one page, the next where the last stopped, starting
		# over after the end; nothing was lost, so nothing was sent and no tick read on
		assert asked == [2, 2, 2, 1, 2]
		assert sent == [0] * 5
	finally:
		dispose(engine)


def test_a_lost_message_sent_again_by_another_process_meanwhile_is_not_sent_twice(engine):
	# Given a job whose message is lost, past the grace period
	job_id = engine.submit("t_echo", "Acme", {"value": "lost.txt"})["job_id"]
	Job.fetch(engine.get_job(job_id)["queue_job_id"], connection=engine.queue.redis).delete()
	time.sleep(engine.settings.requeue_grace_seconds + 0.1)
	waiting = engine.queue.waiting

	def another_process_resends(ids):
		answer = waiting(ids)  # the page is read and Redis answered: the message is missing
		job = engine.get_job(job_id)
		done = transition(engine, job, "Queued", actor="admin", values={"queued_at": engine.now()})
		engine.dispatch(done)  # ... when someone else sends it again
		return answer

	# When the scheduler goes on with what it read
	engine.queue.waiting = another_process_resends
	try:
		assert scheduler.redispatch_lost(engine) == 0
	finally:
		del engine.queue.waiting

	# Then the job has the one message the other process sent
	assert sum(engine.queue.depth().values()) == 1
	actors = [e["actor"] for e in engine.history(job_id)["entries"]]
	assert "scheduler" not in actors, actors
