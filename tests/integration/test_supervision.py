"""The standalone worker claims and settles jobs itself and forks a work-horse only to run the
handler: the horse dies with its worker, the worker keeps the lease of a long job, and a horse
that dies alone is settled by its worker at once. Real worker processes, real kills."""

import os
import signal
import time

from dartwing.dartwing_core.background_jobs import scheduler
from tests.conftest import process_gone, statuses, wait_for_work_horse, wait_until


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
