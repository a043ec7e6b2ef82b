"""engine.wait and `submit --wait`: a caller outside the workers learns how its job ended, from the
job's events, on real worker processes, Redis and the database."""

import threading
import time

import pytest

from dartwing.dartwing_core.background_jobs import JobFailed, NotFound, ValidationError, scheduler
from dartwing.dartwing_core.background_jobs.executor import execute
from dartwing.dartwing_core.background_jobs.retry import PERMANENT
from tests.integration.test_cli import run_cli


@pytest.fixture
def running_scheduler(engine):
	"""The scheduler's periodic tasks (due retries) in a thread, for jobs that fail and retry."""
	stop = threading.Event()
	thread = threading.Thread(
		target=scheduler.run_forever, args=(engine, 0.1), kwargs={"should_stop": stop.is_set}, daemon=True
	)
	thread.start()
	yield
	stop.set()
	thread.join(10)


def test_wait_returns_what_the_completed_handler_returned(engine, live_worker):
	live_worker()
	job = engine.submit("t_echo", "Acme", {"value": "photo"})

	result = engine.wait(job["job_id"], timeout=30)

	assert result == {
		"output_reference": "/files/photo",
		"value": "photo",
		"attempt": 1,
		"user": "Administrator",
	}


def test_wait_goes_on_through_failed_attempts_to_the_result(engine, live_worker, running_scheduler):
	live_worker()
	job = engine.submit("t_flaky", "Acme", {"failures": 2})

	assert engine.wait(job["job_id"], timeout=30) == "done"  # a string result: the output reference
	assert engine.status(job["job_id"])["retry_count"] == 2


def test_wait_raises_job_failed_with_the_error_for_a_dead_letter(engine, live_worker):
	live_worker()
	job = engine.submit("t_permanent", "Acme")

	with pytest.raises(JobFailed) as failed:
		engine.wait(job["job_id"], timeout=30)

	assert failed.value.status == "Dead Letter"
	assert failed.value.error_type == PERMANENT
	assert failed.value.error_message == "PermanentError: bad input file"
	assert failed.value.job["job_id"] == job["job_id"]
	assert "Dead Letter" in str(failed.value) and "bad input file" in str(failed.value)


def test_wait_raises_job_failed_when_the_job_is_canceled_meanwhile(engine):
	# Given a queued job nobody runs, canceled by someone else while we wait
	job = engine.submit("t_echo", "Acme", {"value": "never"})
	threading.Timer(0.5, engine.cancel, args=(job["job_id"], "ops@example.com")).start()

	with pytest.raises(JobFailed) as failed:
		engine.wait(job["job_id"], timeout=10)

	assert failed.value.status == "Canceled"
	assert "canceled by ops@example.com" in str(failed.value)


def test_wait_times_out_on_a_job_that_does_not_end(engine):
	job = engine.submit("t_echo", "Acme", {"value": "nobody runs me"})

	started = time.monotonic()
	with pytest.raises(TimeoutError, match=r"still Queued after 0\.6s"):
		engine.wait(job["job_id"], timeout=0.6)

	assert 0.6 <= time.monotonic() - started < 2


def test_wait_hears_a_job_that_ended_before_it_subscribed(engine):
	"""The race: the job ends after wait's first read but before its subscription is in place,
	so no event reaches it; the read after subscribing must find the end."""
	job = engine.submit("t_echo", "Acme", {"value": "quick"})
	subscribe = engine.events.subscribe

	def end_the_job_then_subscribe(**scope):
		execute(engine, job["job_id"], engine.get_job(job["job_id"])["queue_job_id"])
		return subscribe(**scope)

	engine.events.subscribe = end_the_job_then_subscribe

	started = time.monotonic()
	assert engine.wait(job["job_id"], timeout=5)["value"] == "quick"
	assert time.monotonic() - started < 2


def test_wait_listens_instead_of_polling_the_database(engine, live_worker):
	live_worker()
	job = engine.submit("t_checkpoints", "Acme", {"steps": 30, "delay": 0.05})
	reads = []
	get = engine.store.get

	def counted_get(doctype, name, **kwargs):
		reads.append(name)
		return get(doctype, name, **kwargs)

	engine.store.get = counted_get
	started = time.monotonic()

	assert engine.wait(job["job_id"], timeout=30) == "finished"

	# about 1.5 s of work: a read before subscribing and one after; polling every tick would be 6+
	assert time.monotonic() - started > 1
	assert len(reads) <= 2, reads


def test_wait_refuses_bad_input(engine):
	job = engine.submit("t_echo", "Acme")
	with pytest.raises(NotFound):
		engine.wait("no-such-job", timeout=1)
	for bad in (0, -1, float("nan"), "5", True):
		with pytest.raises(ValidationError) as refused:
			engine.wait(job["job_id"], timeout=bad)
		assert refused.value.field == "timeout"


# -- submit --wait --------------------------------------------------------------------------------


def test_submit_wait_exits_0_with_the_completed_job(engine, live_worker):
	live_worker()
	result = run_cli(engine, "submit", "t_echo", "--org", "Acme", "--params", '{"value": "w"}', "--wait")

	assert result.returncode == 0, result.stderr[-2000:]
	assert '"status": "Completed"' in result.stdout
	assert '"output_reference": "/files/w"' in result.stdout


def test_submit_wait_exits_1_when_the_job_ends_in_dead_letter(engine, live_worker):
	live_worker()
	result = run_cli(engine, "submit", "t_permanent", "--org", "Acme", "--wait", "--timeout", "30")

	assert result.returncode == 1, result.stderr[-2000:]
	assert '"status": "Dead Letter"' in result.stdout
	assert "bad input file" in result.stderr


def test_submit_wait_exits_124_when_the_timeout_passes(engine):
	result = run_cli(engine, "submit", "t_echo", "--org", "Acme", "--wait", "--timeout", "0.5")

	assert result.returncode == 124, result.stderr[-2000:]
	assert '"status": "Queued"' in result.stdout
	assert "still Queued after 0.5s" in result.stderr


def test_submit_wait_refuses_a_bad_timeout_before_submitting(engine):
	for args in (["--wait", "--timeout", "0"], ["--timeout", "5"]):
		result = run_cli(engine, "submit", "t_echo", "--org", "Acme", *args)
		assert result.returncode == 2, result.stderr[-2000:]
		assert '"field": "timeout"' in result.stdout
	assert engine.list_jobs()["total"] == 0
