"""A worker exits at once when it is done: RQ 3 with redis-py 8 could leave `worker --burst` waiting
up to 60 s on its pub/sub thread at exit (prefork.QuickExitWorker.unsubscribe says why)."""

import subprocess
import time

import pytest
from redis.client import PubSub

from dartwing.dartwing_core.background_jobs.forking_worker import ForkingWorker
from dartwing.dartwing_core.background_jobs.prefork import Slot
from dartwing.dartwing_core.background_jobs.worker import WarmWorker
from tests.conftest import CLI, process_env

BURST_RUNS = 30
EXIT_SECONDS = 10  # a run drains a few jobs in about a second or two; the hang took 60 s


def _worker(kind: str, engine):
	queues, redis = engine.queue.in_priority_order(), engine.queue.redis
	if kind == "forking":
		return ForkingWorker(queues, connection=redis, engine=engine)
	import multiprocessing

	return WarmWorker(
		queues, connection=redis, slot=Slot(multiprocessing.get_context("fork")), grace_seconds=1
	)


def _reply_read_before_the_stop(monkeypatch) -> None:
	"""Force the race: the main thread pauses just after sending UNSUBSCRIBE, so the pub/sub
	thread reads the reply first (as it did in about one exit in seven)."""
	send = PubSub.unsubscribe

	def unsubscribe_then_pause(self, *args, **kwargs):
		result = send(self, *args, **kwargs)
		time.sleep(0.05)
		return result

	monkeypatch.setattr(PubSub, "unsubscribe", unsubscribe_then_pause)


@pytest.mark.parametrize("kind", ["forking", "warm"])
def test_a_worker_leaves_its_pubsub_channel_at_once(engine, kind, monkeypatch):
	"""RQ sent UNSUBSCRIBE, then stopped its pub/sub thread; a thread that read the reply first
	went back to waiting in get_message(timeout=60), and redis-py 8.2's stop() joined it (RQ's
	own order takes 60 s here with redis-py 8.2, 1 s with older ones). The engine's workers stop
	the thread first."""
	_reply_read_before_the_stop(monkeypatch)
	worker = _worker(kind, engine)
	for _ in range(3):
		worker.subscribe()
		time.sleep(0.05)  # the thread is inside get_message
		started = time.monotonic()
		worker.unsubscribe()
		assert time.monotonic() - started < 0.9  # not even RQ's 1 s join
		assert not worker.pubsub_thread.is_alive()


@pytest.mark.slow
@pytest.mark.usefixtures("worker_model")
def test_burst_workers_exit_as_soon_as_the_queues_are_empty(engine):
	env = process_env(engine) | {"DARTWING_LOG_LEVEL": "WARNING"}
	slowest = 0.0
	for run in range(BURST_RUNS):
		ids = [engine.submit("noop", "Acme", {"n": run * 10 + i})["job_id"] for i in range(6)]
		started = time.monotonic()
		try:
			result = subprocess.run(
				[*CLI, "worker", "--burst", "-n", "2"],
				env=env,
				capture_output=True,
				text=True,
				timeout=EXIT_SECONDS,
			)
		except subprocess.TimeoutExpired:
			pytest.fail(f"burst run {run + 1} of {BURST_RUNS} had not exited after {EXIT_SECONDS} s")
		slowest = max(slowest, time.monotonic() - started)
		assert result.returncode == 0, result.stderr[-3000:]
		assert {engine.status(job_id)["status"] for job_id in ids} == {"Completed"}
	print(f"{BURST_RUNS} burst runs; the slowest took {slowest:.1f} s")
