"""What the worker processes guarantee, in both models: a job runs in a long-lived child of the
worker (the default) or in a work-horse forked for it (`--fork-per-job`), which dies with its
worker; the worker keeps the lease of a long job; a child or horse that dies alone is settled at
once; one past its deadline, or whose job is no longer its own, is killed. Real worker processes,
real kills. ("Horse" below is whichever process runs the handler.)"""

import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest
from rq import Worker
from rq.job import Job

from dartwing.dartwing_core.background_jobs import scheduler
from dartwing.dartwing_core.background_jobs.prefork import Slot
from dartwing.dartwing_core.background_jobs.transitions import transition
from dartwing.dartwing_core.background_jobs.worker import WarmWorker
from tests.conftest import (
	CLI,
	dispose,
	make_db_url,
	make_engine,
	process_env,
	process_gone,
	run_worker_burst,
	start_worker,
	statuses,
	stop_worker,
	wait_for_work_horse,
	wait_until,
)

# A burst worker that sends itself SIGTERM (a deploy, `systemctl stop`) the first time it enters
# forking_worker.<STEP>: in the middle of its own claim or save, where RQ's handler would otherwise
# raise StopRequested.
SIGTERM_DURING = """
import os, signal, sys
from dartwing.dartwing_core.background_jobs import forking_worker
from dartwing.dartwing_core.background_jobs.backends.standalone import build_engine
from dartwing.dartwing_core.background_jobs.registry import import_handler_modules
from dartwing.dartwing_core.background_jobs.worker import run_worker

step = sys.argv[1]
real = getattr(forking_worker, step)
fired = []

def interrupted(*args, **kwargs):
	if not fired:
		fired.append(True)
		os.kill(os.getpid(), signal.SIGTERM)
	return real(*args, **kwargs)

setattr(forking_worker, step, interrupted)
import_handler_modules(["tests.fixtures"])
run_worker(build_engine(), burst=True)
"""


@pytest.mark.usefixtures("worker_model")
def test_work_horse_dies_with_its_worker(engine, live_worker, tmp_path):
	# Given a worker whose work-horse runs a long job (t_marker_once writes the horse's pid, hangs)
	marker = tmp_path / "work-horse.pid"
	worker = live_worker()
	job_id = engine.submit("t_marker_once", "Acme", {"marker": str(marker), "hold": 60})["job_id"]
	horse_pid = wait_for_work_horse(engine, job_id, marker)

	# When only the worker process is killed
	os.kill(worker.pid, signal.SIGKILL)
	worker.wait(timeout=10)

	# Then its horse dies too: nothing would extend the job's lease, and once the lease lapsed
	# the scheduler would hand the job to another worker while this horse still ran it
	wait_until(lambda: process_gone(horse_pid), 10, f"work-horse {horse_pid} to die with its worker")
	assert engine.status(job_id)["status"] == "Running"


@pytest.mark.usefixtures("worker_model")
def test_work_horse_killed_alone_is_settled_by_its_worker_at_once(engine, live_worker, tmp_path):
	# Given a worker whose work-horse runs a job (t_marker_once: retries with no delay)
	marker = tmp_path / "work-horse.pid"
	live_worker()
	job_id = engine.submit("t_marker_once", "Acme", {"marker": str(marker), "hold": 60})["job_id"]
	horse_pid = wait_for_work_horse(engine, job_id, marker)

	# When the horse alone is killed (the kernel's OOM killer, say)
	os.kill(horse_pid, signal.SIGKILL)

	# Then its worker counts the attempt as failed at once, without waiting for the lease to lapse
	wait_until(lambda: engine.status(job_id)["status"] == "Failed", 10, "the worker to settle the attempt")
	job = engine.status(job_id)
	assert job["retry_count"] == 1
	assert job["error_type"] == "Transient"
	assert "WorkHorseDied" in job["error_message"]
	failed = next(e for e in engine.history(job_id)["entries"] if e["to_status"] == "Failed")
	assert failed["actor"] == "worker"

	# and the retry runs on the same worker to the end
	wait_until(
		lambda: scheduler.tick(engine) and engine.status(job_id)["status"] == "Completed",
		20,
		lambda: f"the retry to complete (job is {engine.status(job_id)['status']})",
		0.2,
	)
	assert engine.status(job_id)["result"] == {"attempt": 2}
	assert statuses(engine, job_id) == ["Queued", "Running", "Failed", "Queued", "Running", "Completed"]
	assert engine.history(job_id)["chain_valid"]


@pytest.mark.usefixtures("worker_model")
def test_worker_keeps_the_lease_of_a_job_that_runs_longer_than_the_lease(engine, live_worker):
	# Given a 3 s lease and a job that runs 7 s without a checkpoint or progress report
	assert engine.settings.lease_seconds == 3
	live_worker()
	job_id = engine.submit("t_ignores_cancel", "Acme", {"seconds": 7})["job_id"]
	wait_until(lambda: engine.status(job_id)["status"] == "Running", 30, "the job to start")

	# When the scheduler looks for orphans all the while it runs
	rescued = 0
	while engine.status(job_id)["status"] == "Running":
		rescued += scheduler.tick(engine)["rescue_orphans"] or 0
		time.sleep(0.25)

	# Then the lease never lapsed and the single attempt completed
	assert rescued == 0
	job = engine.status(job_id)
	assert (job["status"], job["retry_count"], job["output_reference"]) == ("Completed", 0, "finished")
	assert statuses(engine, job_id) == ["Queued", "Running", "Completed"]


@pytest.mark.usefixtures("worker_model")
def test_work_horse_killed_after_its_timeout_counts_as_timed_out(engine, live_worker, tmp_path):
	# Given a job that blocks SIGALRM, so its 1 s deadline cannot stop it
	marker = tmp_path / "work-horse.pid"
	live_worker()
	job_id = engine.submit("t_blocks_alarm", "Acme", {"marker": str(marker)})["job_id"]
	horse_pid = wait_for_work_horse(engine, job_id, marker)

	# When its horse is killed once the timeout has passed (as RQ's backstop timeout does)
	time.sleep(1.5)
	os.kill(horse_pid, signal.SIGKILL)

	# Then the worker records a timeout, to be retried, not an unexplained death
	wait_until(lambda: engine.status(job_id)["status"] == "Timed Out", 10, "the worker to settle the attempt")
	job = engine.status(job_id)
	assert job["error_message"] == "JobTimedOut: exceeded its timeout of 1s"
	assert (job["error_type"], job["retry_count"]) == ("Transient", 1)
	assert job["next_retry_at"] is not None


@pytest.mark.parametrize("step", ["claim", "settle"])
def test_a_stop_signal_during_the_workers_own_database_work_is_a_warm_shutdown(engine, step):
	"""--fork-per-job: the worker claims and saves in its own process, around the horse."""
	# Given two queued jobs
	first = engine.submit("t_echo", "Acme", {"value": "first"})["job_id"]
	second = engine.submit("t_echo", "Acme", {"value": "second"})["job_id"]

	# When the worker is sent SIGTERM while it claims, or saves, the first
	result = subprocess.run(
		[sys.executable, "-c", SIGTERM_DURING, step],
		env=process_env(engine),
		capture_output=True,
		text=True,
		timeout=60,
	)

	# Then it finishes and saves the first job, and stops before taking the second
	assert result.returncode == 0, result.stderr[-3000:]
	assert engine.status(first)["status"] == "Completed", result.stderr[-3000:]
	assert statuses(engine, first) == ["Queued", "Running", "Completed"]
	assert engine.status(second)["status"] == "Queued"


@pytest.mark.usefixtures("worker_model")
def test_worker_kills_a_horse_whose_job_is_no_longer_its_own(engine, live_worker, tmp_path):
	# Given a job running in a worker's horse (t_ignores_cancel never checks for a cancel)
	marker = tmp_path / "work-horse.pid"
	live_worker()
	job_id = engine.submit("t_ignores_cancel", "Acme", {"seconds": 60, "marker": str(marker)})["job_id"]
	horse_pid = wait_for_work_horse(engine, job_id, marker)

	# When the job is marked Canceled and the stop message never reaches the worker
	row = engine.get_job(job_id)
	assert transition(engine, row, "Canceled", actor="scheduler", message="Stopped (message lost)")

	# Then at its next heartbeat (lease/3 = 1 s) the worker finds the lease is not its own and kills
	# the horse; the job stays Canceled
	wait_until(lambda: process_gone(horse_pid), 10, f"work-horse {horse_pid} to be killed")
	assert statuses(engine, job_id) == ["Queued", "Running", "Canceled"]


def _pids_of_burst(engine, jobs: int, *worker_args: str, hold_mb: int = 0) -> list[int]:
	ids = [engine.submit("t_pid", "Acme", {"n": n, "hold_mb": hold_mb})["job_id"] for n in range(jobs)]
	run_worker_burst(engine, *worker_args)
	return [engine.status(job_id)["result"]["pid"] for job_id in ids]


def test_the_default_worker_runs_many_jobs_in_one_long_lived_child(engine):
	pids = _pids_of_burst(engine, 6)
	assert len(set(pids)) == 1


def test_fork_per_job_runs_each_job_in_a_process_of_its_own(engine):
	pids = _pids_of_burst(engine, 4, "--fork-per-job")
	assert len(set(pids)) == 4


def test_a_child_is_replaced_after_max_jobs_per_child(engine):
	pids = _pids_of_burst(engine, 6, "--max-jobs-per-child", "2")
	assert [len(set(pids[i : i + 2])) for i in range(0, 6, 2)] == [1, 1, 1]
	assert len(set(pids)) == 3


def test_a_child_is_replaced_after_a_job_leaves_it_past_max_memory_per_child(engine):
	# Each job leaves its process 200 MB larger; a child is replaced once it passes 150 MB
	pids = _pids_of_burst(engine, 3, "--max-memory-per-child", "150", hold_mb=200)
	assert len(set(pids)) == 3
	# and without the limit, one child runs them all
	assert len(set(_pids_of_burst(engine, 3, hold_mb=200))) == 1


def test_child_limits_need_long_lived_children(engine):
	result = subprocess.run(
		[*CLI, "worker", "--burst", "--fork-per-job", "--max-jobs-per-child", "2"],
		env=process_env(engine),
		capture_output=True,
		text=True,
		timeout=60,
	)
	assert result.returncode == 2
	assert "--max-jobs-per-child and --max-memory-per-child need long-lived children" in result.stderr


def test_the_default_worker_leaves_no_queue_message_behind(engine):
	"""It runs the engine's messages without RQ's per-job records; each message is deleted once
	run (result_ttl=0 would), so Redis keeps nothing of a finished job."""
	ids = [engine.submit("t_pid", "Acme", {"n": n})["job_id"] for n in range(5)]
	messages = [engine.get_job(job_id)["queue_job_id"] for job_id in ids]
	run_worker_burst(engine)
	assert {engine.status(job_id)["status"] for job_id in ids} == {"Completed"}
	assert [Job.exists(message, connection=engine.queue.redis) for message in messages] == [False] * 5


def test_a_child_keeps_its_worker_registered_through_a_job_longer_than_rqs_worker_ttl(engine, live_worker):
	# Given a job that may run 15 minutes, longer than RQ's worker key lives (worker_ttl + 60 s)
	engine.store.update("Job Type", "t_ignores_cancel", {"default_timeout": 900})
	live_worker()
	job_id = engine.submit("t_ignores_cancel", "Acme", {"seconds": 3})["job_id"]
	wait_until(lambda: engine.status(job_id)["status"] == "Running", 30, "the job to start")

	# Then the running child's worker key lives at least as long as the job may (RQ's dashboards
	# and `rq info` list it), not RQ's idle worker_ttl alone
	workers = Worker.all(queue=engine.queue.queues["Normal"], connection=engine.queue.redis)
	assert len(workers) == 1
	assert engine.queue.redis.ttl(workers[0].key) > 900
	assert workers[0].get_state() == "busy"


@pytest.mark.usefixtures("worker_model")
def test_the_hard_stop_of_a_canceled_job_reaches_its_process_at_once(tmp_path, redis_url):
	"""With a 60 s lease, the next heartbeat that would notice is 20 s away: the scheduler's stop
	command must end the run itself."""
	engine = make_engine(make_db_url("sqlite", tmp_path), redis_url, lease_seconds=60)
	worker = start_worker(engine)
	try:
		marker = tmp_path / "work-horse.pid"
		job_id = engine.submit("t_ignores_cancel", "Acme", {"seconds": 60, "marker": str(marker)})["job_id"]
		horse_pid = wait_for_work_horse(engine, job_id, marker)
		engine.cancel(job_id, user="bob@example.com")
		wait_until(lambda: scheduler.tick(engine)["stop_canceled"], 15, "the scheduler to stop the job")
		wait_until(lambda: process_gone(horse_pid), 5, f"process {horse_pid} to be stopped")
		assert engine.status(job_id)["status"] == "Canceled"
	finally:
		stop_worker(worker)
		dispose(engine)


@pytest.mark.usefixtures("worker_model")
def test_a_cold_shutdown_settles_the_interrupted_job_at_once(engine, tmp_path):
	# Given a worker running a long job
	worker = start_worker(engine)
	try:
		marker = tmp_path / "work-horse.pid"
		job_id = engine.submit("t_marker_once", "Acme", {"marker": str(marker), "hold": 60})["job_id"]
		horse_pid = wait_for_work_horse(engine, job_id, marker)

		# When it is told to stop twice (a warm shutdown would wait for the job): a cold shutdown
		os.kill(worker.pid, signal.SIGTERM)
		time.sleep(1.5)  # RQ ignores a second signal within 1 s of the first
		os.kill(worker.pid, signal.SIGTERM)
		worker.wait(timeout=15)

		# Then the run ends with its worker, and the attempt is settled at once as failed (to be
		# retried), not left Running until its lease lapses
		wait_until(lambda: process_gone(horse_pid), 10, f"process {horse_pid} to end")
		job = engine.status(job_id)
		assert (job["status"], job["retry_count"], job["error_type"]) == ("Failed", 1, "Transient")
	finally:
		stop_worker(worker)


def test_a_child_runs_a_message_not_the_engines_in_a_horse_it_keeps_alive(engine):
	"""RQ 3 asks for the heartbeat TTL of a horse that runs past the monitoring interval with a
	keyword argument: the child must answer, not leave the horse and quit."""
	queue = engine.queue.queues["Normal"]
	message = queue.enqueue_call(func="time.sleep", args=(2.5,), result_ttl=60)
	worker = WarmWorker(
		engine.queue.in_priority_order(),
		connection=engine.queue.redis,
		slot=Slot(multiprocessing.get_context("fork")),
		grace_seconds=1,
		job_monitoring_interval=1,
	)
	worker.work(burst=True, logging_level="WARNING", with_scheduler=False)
	assert message.get_status(refresh=True) == "finished"
