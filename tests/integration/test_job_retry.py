"""Retries with backoff, permanent errors, timeouts and the dead-letter queue, run by real RQ workers
(`run_worker_burst`) and the scheduler's retry task (`scheduler.tick`)."""

import pytest

from dartwing.dartwing_core.background_jobs import InvalidState, scheduler
from tests.conftest import run_worker_burst, statuses

# Every test here runs against both worker models (conftest.worker_model).
pytestmark = pytest.mark.usefixtures("worker_model")


def test_transient_failure_is_retried_until_it_succeeds(engine):
	# Given a job that fails twice with a transient error (t_flaky: base_delay 0, max_retries 3)
	job_id = engine.submit("t_flaky", "Acme", {"failures": 2})["job_id"]

	for attempt in (1, 2):
		# When a worker runs it, the attempt fails and a retry is planned
		run_worker_burst(engine)
		failed = engine.status(job_id)
		assert failed["status"] == "Failed"
		assert failed["retry_count"] == attempt
		assert failed["error_type"] == "Transient"
		assert failed["error_message"] == f"TransientError: flaky on attempt {attempt}"
		assert failed["next_retry_at"] is not None
		# and the scheduler puts it back on the queue once it is due
		assert scheduler.tick(engine)["requeue_due_retries"] == 1
		queued = engine.status(job_id)
		assert queued["status"] == "Queued"
		assert queued["next_retry_at"] is None

	run_worker_burst(engine)

	done = engine.status(job_id)
	assert done["status"] == "Completed"
	assert done["output_reference"] == "done"
	assert done["retry_count"] == 2
	assert done["error_type"] is None and done["error_message"] is None
	history = engine.history(job_id)
	assert [e["to_status"] for e in history["entries"]] == [
		"Queued",
		"Running",
		"Failed",
		"Queued",
		"Running",
		"Failed",
		"Queued",
		"Running",
		"Completed",
	]
	started = [e["message"] for e in history["entries"] if e["to_status"] == "Running"]
	assert started == ["Attempt 1 started", "Attempt 2 started", "Attempt 3 started"]
	assert [e["actor"] for e in history["entries"] if e["from_status"] == "Failed"] == ["scheduler"] * 2
	assert history["chain_valid"]


def test_permanent_errors_go_straight_to_dead_letter(engine):
	# PermanentError, ValueError (bad input) and a handler returning 42 (not a result) are not retried
	expected = {
		"t_permanent": "PermanentError: bad input file",
		"t_value_error": "ValueError: not a number",
		"t_bad_return": "PermanentError: handler returned int; return None, a string or a JSON-able dict",
	}
	jobs = {job_type: engine.submit(job_type, "Acme")["job_id"] for job_type in expected}

	run_worker_burst(engine)

	for job_type, job_id in jobs.items():
		job = engine.status(job_id)
		assert (job_type, job["status"], job["error_type"]) == (job_type, "Dead Letter", "Permanent")
		assert job["error_message"] == expected[job_type]
		assert job["retry_count"] == 0
		assert job["next_retry_at"] is None
		assert statuses(engine, job_id) == ["Queued", "Running", "Dead Letter"]
	# nothing is left for the scheduler to retry
	assert scheduler.tick(engine)["requeue_due_retries"] == 0
	assert {engine.status(job_id)["status"] for job_id in jobs.values()} == {"Dead Letter"}


def test_unknown_error_is_retried_then_dead_lettered_when_retries_run_out(engine):
	# t_unknown_error raises RuntimeError (unclassified: transient) and allows one retry
	job_id = engine.submit("t_unknown_error", "Acme")["job_id"]

	run_worker_burst(engine)
	failed = engine.status(job_id)
	assert (failed["status"], failed["retry_count"], failed["error_type"]) == ("Failed", 1, "Transient")
	assert scheduler.tick(engine)["requeue_due_retries"] == 1
	run_worker_burst(engine)

	job = engine.status(job_id)
	assert job["status"] == "Dead Letter"
	assert job["error_type"] == "Transient"
	assert job["retry_count"] == 1
	assert job["error_message"] == "retries exhausted (1/1): RuntimeError: something odd"
	entries = engine.history(job_id)["entries"]
	assert [e["to_status"] for e in entries] == [
		"Queued",
		"Running",
		"Failed",
		"Queued",
		"Running",
		"Dead Letter",
	]
	assert entries[-1]["message"] == "Dead letter: retries exhausted (1/1): RuntimeError: something odd"


def test_timeout_is_retried_then_dead_lettered(engine):
	# t_sleep has a 1 s timeout and one retry; this run would sleep 5 s
	job_id = engine.submit("t_sleep", "Acme", {"seconds": 5})["job_id"]

	run_worker_burst(engine)
	timed_out = engine.status(job_id)
	assert timed_out["status"] == "Timed Out"
	assert timed_out["retry_count"] == 1
	assert timed_out["error_type"] == "Transient"
	assert timed_out["error_message"] == "JobTimedOut: exceeded its timeout of 1s"
	assert timed_out["next_retry_at"] is not None

	assert scheduler.tick(engine)["requeue_due_retries"] == 1
	assert engine.status(job_id)["status"] == "Queued"
	run_worker_burst(engine)

	job = engine.status(job_id)
	assert job["status"] == "Dead Letter"
	assert job["error_message"] == "retries exhausted (1/1): JobTimedOut: exceeded its timeout of 1s"
	assert statuses(engine, job_id) == ["Queued", "Running", "Timed Out", "Queued", "Running", "Dead Letter"]


def test_handler_catching_exception_is_still_stopped_by_its_timeout(engine):
	# t_swallow_timeout wraps a 3 s sleep in `except Exception: return "swallowed"`; timeout 1 s, no retries
	job_id = engine.submit("t_swallow_timeout", "Acme", {"seconds": 3})["job_id"]

	run_worker_burst(engine)

	job = engine.status(job_id)
	assert job["status"] == "Dead Letter"
	assert job["output_reference"] is None  # the handler never got to return "swallowed"
	assert job["error_message"] == "retries exhausted (0/0): JobTimedOut: exceeded its timeout of 1s"
	assert statuses(engine, job_id) == ["Queued", "Running", "Dead Letter"]


def test_admin_retry_of_dead_letter_queues_it_with_a_fresh_retry_budget(engine):
	# Given a job dead-lettered after using its one retry
	job_id = engine.submit("t_unknown_error", "Acme")["job_id"]
	run_worker_burst(engine)
	scheduler.tick(engine)
	run_worker_burst(engine)
	assert engine.status(job_id)["status"] == "Dead Letter"
	assert engine.status(job_id)["retry_count"] == 1

	# When an admin retries it
	retried = engine.retry(job_id, user="ops@example.com")

	# Then it is queued now, with its retries and error reset, and the retry is logged
	assert retried["status"] == "Queued"
	assert retried["retry_count"] == 0
	assert retried["error_type"] is None and retried["error_message"] is None
	assert engine.queue.is_waiting(engine.get_job(job_id)["queue_job_id"])
	last = engine.history(job_id)["entries"][-1]
	assert (last["from_status"], last["to_status"]) == ("Dead Letter", "Queued")
	assert (last["actor"], last["message"]) == ("ops@example.com", "Retried by ops@example.com")

	# and the fresh budget shows: the next failure is retried again instead of dead-lettered
	run_worker_burst(engine)
	again = engine.status(job_id)
	assert (again["status"], again["retry_count"]) == ("Failed", 1)
	assert engine.history(job_id)["chain_valid"]


def test_retry_of_completed_job_is_refused(engine):
	job_id = engine.submit("t_echo", "Acme", {"value": "a.txt"})["job_id"]
	run_worker_burst(engine)
	assert engine.status(job_id)["status"] == "Completed"

	with pytest.raises(InvalidState, match="Completed"):
		engine.retry(job_id)

	assert engine.status(job_id)["status"] == "Completed"
	assert statuses(engine, job_id) == ["Queued", "Running", "Completed"]
