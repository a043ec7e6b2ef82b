"""Canceling jobs: at once while they wait, at the next checkpoint while they run, by force after the
grace period when they ignore checkpoints. Real RQ worker processes run the jobs."""

import os
import signal

import pytest

from dartwing.dartwing_core.background_jobs import InvalidState, scheduler
from tests.conftest import (
	kill_worker_and_work_horse,
	process_gone,
	run_worker_burst,
	wait_for_work_horse,
	wait_until,
)

# Every test here runs against both worker models (conftest.worker_model).
pytestmark = pytest.mark.usefixtures("worker_model")


def test_cancel_queued_job_stops_it_at_once_and_the_worker_skips_it(engine):
	job_id = engine.submit("t_echo", "Acme", {"value": "never.txt"})["job_id"]

	canceled = engine.cancel(job_id, user="bob@example.com")

	assert canceled["status"] == "Canceled"
	assert canceled["canceled_by"] == "bob@example.com"
	assert canceled["canceled_at"] is not None
	assert engine.status(job_id)["status"] == "Canceled"

	# the queue message is still there; the worker reads the row and leaves the job alone
	output = run_worker_burst(engine)
	assert f"Job skipped job_id={job_id}" in output.stderr
	assert f"Job started job_id={job_id}" not in output.stderr
	job = engine.status(job_id)
	assert job["status"] == "Canceled"
	assert job["started_at"] is None
	entries = engine.history(job_id)["entries"]
	assert [e["to_status"] for e in entries] == ["Queued", "Canceled"]
	assert (entries[-1]["actor"], entries[-1]["message"]) == (
		"bob@example.com",
		"Canceled by bob@example.com",
	)


def test_cancel_running_job_stops_it_at_its_next_checkpoint(engine, live_worker):
	live_worker()
	# t_checkpoints calls ctx.checkpoint() every 50 ms; left alone it would run for 20 s
	job_id = engine.submit("t_checkpoints", "Acme", {"steps": 400, "delay": 0.05})["job_id"]
	wait_until(
		lambda: engine.status(job_id)["progress"] > 0,
		30,
		lambda: f"the job to make progress (it is {engine.status(job_id)['status']})",
	)

	requested = engine.cancel(job_id, user="bob@example.com")

	assert requested["status"] == "Running"  # a running job is asked, not stopped
	assert requested["cancel_requested_at"] is not None
	job = wait_until(
		lambda: (j := engine.status(job_id))["status"] == "Canceled" and j,
		15,
		lambda: f"the job to stop at a checkpoint (it is {engine.status(job_id)['status']})",
	)
	assert job["canceled_by"] == "bob@example.com"
	assert job["canceled_at"] >= job["cancel_requested_at"]
	assert 0 < job["progress"] < 100
	entries = engine.history(job_id)["entries"]
	assert [e["to_status"] for e in entries] == ["Queued", "Running", "Running", "Canceled"]
	assert entries[2]["message"] == "Cancel requested by bob@example.com"
	assert (entries[3]["actor"], entries[3]["message"]) == (
		"worker",
		"Canceled at checkpoint: canceled by bob@example.com",
	)


def test_job_ignoring_checkpoints_is_killed_after_the_grace_period(engine, live_worker, tmp_path):
	live_worker()
	marker = tmp_path / "work-horse.pid"
	# t_ignores_cancel writes its work-horse's pid, then sleeps 30 s without a checkpoint
	job_id = engine.submit("t_ignores_cancel", "Acme", {"seconds": 30, "marker": str(marker)})["job_id"]
	horse_pid = wait_for_work_horse(engine, job_id, marker, "the job to run and write its pid")
	try:
		engine.cancel(job_id, user="bob@example.com")

		# When the scheduler runs after the 1 s grace period, it kills the job
		wait_until(
			lambda: scheduler.tick(engine)["stop_canceled"],
			15,
			lambda: f"the scheduler to stop the job (it is {engine.status(job_id)['status']})",
			interval=0.1,
		)
		job = engine.status(job_id)
		assert job["status"] == "Canceled"
		assert job["canceled_by"] == "bob@example.com"
		last = engine.history(job_id)["entries"][-1]
		assert last["actor"] == "scheduler"
		assert last["message"] == "Stopped: no checkpoint within 1s of the cancel request"
		wait_until(lambda: process_gone(horse_pid), 10, f"work-horse pid {horse_pid} to be killed")
	finally:
		if not process_gone(horse_pid):
			os.kill(horse_pid, signal.SIGKILL)

	# the worker itself survives and takes the next job
	next_id = engine.submit("t_echo", "Acme", {"value": "after.txt"})["job_id"]
	wait_until(
		lambda: engine.status(next_id)["status"] == "Completed",
		30,
		lambda: f"the next job to complete (it is {engine.status(next_id)['status']})",
	)
	assert engine.status(job_id)["status"] == "Canceled"


def test_attempt_failing_after_a_cancel_request_ends_canceled_not_retried(engine, live_worker):
	live_worker()
	# t_fails_after_cancel never checkpoints: once a cancel is requested it fails with a transient error
	job_id = engine.submit("t_fails_after_cancel", "Acme")["job_id"]
	wait_until(lambda: engine.status(job_id)["status"] == "Running", 30, "the job to start")

	engine.cancel(job_id, user="bob@example.com")

	job = wait_until(
		lambda: (j := engine.status(job_id))["status"] != "Running" and j, 15, "the attempt to end"
	)
	assert job["status"] == "Canceled", "the user's cancel request was dropped and the job retried"
	assert job["canceled_by"] == "bob@example.com"
	assert job["retry_count"] == 0
	assert job["error_message"] == "TransientError: upstream unavailable"
	assert scheduler.tick(engine)["requeue_due_retries"] == 0
	assert engine.status(job_id)["status"] == "Canceled"
	assert engine.history(job_id)["entries"][-1]["actor"] == "worker"


def test_job_canceled_after_its_worker_died_is_canceled_not_retried(engine, live_worker, tmp_path):
	# Given a job whose worker and work-horse died (t_marker_once hangs on its first attempt)
	marker = tmp_path / "work-horse.pid"
	worker = live_worker()
	job_id = engine.submit("t_marker_once", "Acme", {"marker": str(marker), "hold": 60})["job_id"]
	horse_pid = wait_for_work_horse(engine, job_id, marker)
	kill_worker_and_work_horse(worker, horse_pid)
	# and whose lease has lapsed by the time a user cancels it
	wait_until(lambda: engine.get_job(job_id)["lease_expires_at"] < engine.now(), 10, "the lease to lapse")
	engine.cancel(job_id, user="bob@example.com")

	# When the scheduler finds the orphan
	assert scheduler.tick(engine)["rescue_orphans"] == 1

	# Then the lost attempt ends the job as the user asked, instead of retrying it
	job = engine.status(job_id)
	assert job["status"] == "Canceled", "the user's cancel request was dropped and the job retried"
	assert job["canceled_by"] == "bob@example.com"
	assert job["retry_count"] == 0
	assert "stopped sending heartbeats" in job["error_message"]
	assert sum(engine.queue.depth().values()) == 0
	entries = engine.history(job_id)["entries"]
	assert [e["to_status"] for e in entries] == ["Queued", "Running", "Running", "Canceled"]
	assert entries[-1]["actor"] == "scheduler"


def test_cancel_completed_job_is_refused(engine):
	job_id = engine.submit("t_echo", "Acme", {"value": "done.txt"})["job_id"]
	run_worker_burst(engine)
	assert engine.status(job_id)["status"] == "Completed"

	with pytest.raises(InvalidState, match="Completed"):
		engine.cancel(job_id)

	job = engine.status(job_id)
	assert job["status"] == "Completed"
	assert job["canceled_by"] is None
	assert [e["to_status"] for e in engine.history(job_id)["entries"]] == ["Queued", "Running", "Completed"]


def test_cancel_parent_cancels_its_pending_children_with_the_reason_logged(engine):
	parent_id = engine.submit("t_echo", "Acme", {"value": "parent"})["job_id"]
	children = [
		engine.submit("t_echo", "Acme", {"value": f"child-{i}"}, depends_on=parent_id)["job_id"]
		for i in (1, 2)
	]
	assert {engine.status(c)["status"] for c in children} == {"Pending"}

	engine.cancel(parent_id, user="bob@example.com")

	reason = f"parent job {parent_id} ended Canceled"
	for child_id in children:
		child = engine.status(child_id)
		assert child["status"] == "Canceled"
		assert child["error_message"] == reason
		assert child["canceled_at"] is not None
		assert child["canceled_by"] == "bob@example.com"
		entries = engine.history(child_id)["entries"]
		assert [e["to_status"] for e in entries] == ["Pending", "Canceled"]
		assert (entries[-1]["actor"], entries[-1]["message"]) == ("bob@example.com", f"Canceled: {reason}")
	# no queue message was ever sent for the children
	assert sum(engine.queue.depth().values()) == 1  # the parent's, which a worker would skip
