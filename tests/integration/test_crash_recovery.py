"""The database is the source of truth: a worker killed mid-job, a Redis that lost its queues, or a
message that never arrived are put right by the scheduler, and every job still runs to the end."""

import os
import signal

import pytest
from redis import Redis
from rq.job import Job

from dartwing.dartwing_core.background_jobs import Engine, scheduler
from dartwing.dartwing_core.background_jobs.backends.redis_events import RedisEvents
from dartwing.dartwing_core.background_jobs.backends.rq_queue import RqQueue
from tests.conftest import (
	dispose,
	kill_worker_and_work_horse,
	make_db_url,
	make_engine,
	process_gone,
	run_worker_burst,
	start_worker,
	statuses,
	wait_for_work_horse,
	wait_until,
)

# Every test here runs against both worker models (conftest.worker_model).
pytestmark = pytest.mark.usefixtures("worker_model")


def tick_until(engine, task: str, total: int, timeout: float) -> int:
	"""Run the scheduler until `task` has acted on `total` jobs in all; returns how many it did."""
	done = []

	def tick():
		acted = scheduler.tick(engine)[task]
		assert acted != "error", f"scheduler task {task} failed; see the log"
		done.append(acted or 0)
		return sum(done) >= total

	wait_until(tick, timeout, lambda: f"scheduler task {task} to act on {total} jobs (did {sum(done)})", 0.1)
	return sum(done)


def test_job_of_a_worker_killed_mid_job_is_rescued_and_finished_by_another(engine, tmp_path):
	# Given a worker running a job (t_marker_once writes its work-horse's pid, then hangs)
	marker = tmp_path / "work-horse.pid"
	log = open(tmp_path / "worker.log", "w")
	worker = start_worker(engine, stdout=log)
	job_id = engine.submit("t_marker_once", "Acme", {"marker": str(marker), "hold": 60})["job_id"]
	try:
		horse_pid = wait_for_work_horse(engine, job_id, marker)

		# When the machine dies: SIGKILL to the worker's process group and to its work-horse's
		kill_worker_and_work_horse(worker, horse_pid)
	finally:
		if worker.poll() is None:
			os.killpg(worker.pid, signal.SIGKILL)
			worker.wait(timeout=10)
		if marker.exists() and marker.read_text() and not process_gone(int(marker.read_text())):
			os.killpg(int(marker.read_text()), signal.SIGKILL)
		log.close()

	# Then nobody told the database: the job still looks Running
	assert engine.status(job_id)["status"] == "Running"

	# and once its 3 s lease lapses the scheduler counts the attempt as failed and queues a retry
	tick_until(engine, "rescue_orphans", 1, timeout=20)
	rescued = engine.get_job(job_id)
	assert rescued["retry_count"] == 1
	assert "stopped sending heartbeats" in rescued["error_message"]
	failed = [e for e in engine.history(job_id)["entries"] if e["to_status"] == "Failed"]
	assert len(failed) == 1
	assert failed[0]["actor"] == "scheduler"
	assert "stopped sending heartbeats" in failed[0]["message"]
	wait_until(
		lambda: scheduler.tick(engine) and engine.status(job_id)["status"] == "Queued",
		10,
		lambda: f"the retry to be queued (job is {engine.status(job_id)['status']})",
		0.1,
	)

	# When a new worker comes up, it finishes the job
	run_worker_burst(engine)

	job = engine.status(job_id)
	assert job["status"] == "Completed"
	assert job["result"] == {"attempt": 2}
	assert job["retry_count"] == 1
	history = engine.history(job_id)
	assert [e["to_status"] for e in history["entries"]] == [
		"Queued",
		"Running",
		"Failed",
		"Queued",
		"Running",
		"Completed",
	]
	assert history["chain_valid"]
	assert engine.list_jobs("Acme")["total"] == 1


@pytest.fixture
def isolated_redis_engine(tmp_path, redis_url):
	"""An engine whose Redis is a database index of its own, so the test may empty it; and its URL."""
	url = f"{redis_url.rsplit('/', 1)[0]}/13"
	engine = make_engine(make_db_url("sqlite", tmp_path), url)
	yield engine, url
	dispose(engine)


def test_jobs_survive_redis_losing_every_queued_message(isolated_redis_engine):
	engine, url = isolated_redis_engine
	job_ids = [engine.submit("t_echo", "Acme", {"value": f"file-{i}.txt"})["job_id"] for i in range(20)]
	assert sum(engine.queue.depth().values()) == 20

	# When Redis loses everything (a restart without persistence, FLUSHDB)
	others = [
		key
		for key in engine.queue.redis.scan_iter("rq:queue:*")
		if engine.settings.queue_prefix not in key.decode()
	]
	assert not others, f"another run uses {url}; not emptying it: {others[:3]}"
	engine.queue.redis.flushdb()
	assert sum(engine.queue.depth().values()) == 0

	# Then after the 1 s grace period the scheduler sends every Queued job again
	assert tick_until(engine, "redispatch_lost", 20, timeout=15) == 20
	assert sum(engine.queue.depth().values()) == 20

	run_worker_burst(engine, timeout=120, env={"DARTWING_REDIS_URL": url})

	for job_id in job_ids:
		job = engine.status(job_id)
		assert job["status"] == "Completed", job
		entries = engine.history(job_id)["entries"]
		assert [e["to_status"] for e in entries].count("Running") == 1, "each job ran exactly once"
		assert [e["message"] for e in entries].count("Message missing from queue; sent again") == 1
	assert sum(engine.queue.depth().values()) == 0


def test_job_whose_queue_message_was_lost_is_dispatched_again(engine):
	# Given a job whose message never reached a worker (lost between commit and dispatch)
	job_id = engine.submit("t_echo", "Acme", {"value": "lost.txt"})["job_id"]
	Job.fetch(engine.get_job(job_id)["queue_job_id"], connection=engine.queue.redis).delete()
	assert sum(engine.queue.depth().values()) == 0

	# When the scheduler notices, after the grace period
	assert tick_until(engine, "redispatch_lost", 1, timeout=15) == 1

	# Then a worker runs it
	run_worker_burst(engine)
	assert engine.status(job_id)["status"] == "Completed"
	entries = engine.history(job_id)["entries"]
	assert [e["to_status"] for e in entries] == ["Queued", "Queued", "Running", "Completed"]
	assert (entries[1]["actor"], entries[1]["message"]) == (
		"scheduler",
		"Message missing from queue; sent again",
	)
	assert engine.history(job_id)["chain_valid"]


def test_job_submitted_while_redis_is_down_is_dispatched_once_it_is_back(engine):
	# Given an API process whose Redis is unreachable (nothing listens on port 1)
	down = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
	prefix = engine.settings.queue_prefix
	api = Engine(
		engine.store, RqQueue(down, prefix), RedisEvents(down, prefix), engine.settings, lock_client=down
	)

	# When a job is submitted, the row is committed and the failed dispatch is left to the scheduler
	job_id = api.submit("t_echo", "Acme", {"value": "offline.txt"})["job_id"]
	assert engine.status(job_id)["status"] == "Queued"
	assert sum(engine.queue.depth().values()) == 0

	# Then a scheduler that reaches Redis sends it after the grace period, and a worker runs it
	assert tick_until(engine, "redispatch_lost", 1, timeout=15) == 1
	run_worker_burst(engine)
	assert engine.status(job_id)["status"] == "Completed"
	assert statuses(engine, job_id) == ["Queued", "Queued", "Running", "Completed"]


def test_lost_message_is_found_behind_a_backlog_larger_than_one_batch(tmp_path, redis_url):
	# Given more jobs legitimately waiting than one scheduler batch holds, all older than the
	# grace period, and behind them one job whose queue entry vanished while its record survived
	engine = make_engine(make_db_url("sqlite", tmp_path), redis_url, batch_size=3)
	try:
		waiting = [
			engine.submit("t_echo", "Acme", {"value": f"w{i}"}, priority="Low")["job_id"] for i in range(4)
		]
		lost = engine.submit("t_echo", "Acme", {"value": "lost"})["job_id"]
		message = engine.get_job(lost)["queue_job_id"]
		engine.queue.redis.lrem(engine.queue.queues["Normal"].key, 0, message)
		assert not engine.queue.is_waiting(message)
		assert all(engine.queue.is_waiting(engine.get_job(j)["queue_job_id"]) for j in waiting)

		# When the scheduler looks for lost messages
		assert tick_until(engine, "redispatch_lost", 1, timeout=15) == 1

		# Then only the lost one was sent again, and every job runs
		assert engine.queue.is_waiting(message)
		run_worker_burst(engine)
		assert [engine.status(j)["status"] for j in [*waiting, lost]] == ["Completed"] * 5
		sent_again = [
			e for e in engine.history(lost)["entries"] if e["message"].startswith("Message missing")
		]
		assert len(sent_again) == 1
		assert all(len(engine.history(j)["entries"]) == 3 for j in waiting)
	finally:
		dispose(engine)
