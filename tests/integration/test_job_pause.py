"""Pause and resume, of a job and of a job type, with real workers: a waiting job pauses at once
and its queue message is skipped, a running one at its next checkpoint without using an attempt,
and a resumed job continues from its saved items."""

from datetime import timedelta

import pytest

from dartwing.dartwing_core.background_jobs import InvalidState, NotFound, cleanup, scheduler
from dartwing.dartwing_core.background_jobs.transitions import ITEM, JOB
from tests.conftest import run_worker_burst, statuses, wait_until


def test_a_queued_job_pauses_at_once_and_resumes(engine):
	job_id = engine.submit("t_echo", "Acme", {"value": "paused"})["job_id"]

	paused = engine.pause(job_id, user="ops@example.com")
	run_worker_burst(engine)  # its message arrives and is skipped

	assert paused["status"] == "Paused"
	assert engine.status(job_id)["status"] == "Paused"
	row = engine.get_job(job_id)
	assert (row["paused_by"], row["retry_count"]) == ("ops@example.com", 0) and row["paused_at"]

	resumed = engine.resume(job_id, user="ops@example.com")
	run_worker_burst(engine)

	assert resumed["status"] == "Queued"
	assert engine.status(job_id)["status"] == "Completed"
	history = engine.history(job_id)
	assert [e["to_status"] for e in history["entries"]] == [
		"Queued",
		"Paused",
		"Queued",
		"Running",
		"Completed",
	]
	assert [e["message"] for e in history["entries"]][1:3] == [
		"Paused by ops@example.com",
		"Resumed by ops@example.com",
	]
	assert history["chain_valid"]
	assert engine.get_job(job_id)["paused_by"] is None


def test_a_pending_job_resumes_to_pending_while_its_parent_is_unfinished(engine):
	parent = engine.submit("t_echo", "Acme", {"value": "parent"})["job_id"]
	child = engine.submit("t_echo", "Acme", {"value": "child"}, depends_on=parent)["job_id"]

	assert engine.pause(child)["status"] == "Paused"
	assert engine.resume(child)["status"] == "Pending"
	run_worker_burst(engine)

	assert engine.status(child)["status"] == "Completed"  # released when its parent completed


def test_a_paused_child_whose_parent_ended_meanwhile_is_canceled_on_resume_saying_why(engine):
	parent = engine.submit("t_echo", "Acme", {"value": "parent"})["job_id"]
	child = engine.submit("t_echo", "Acme", {"value": "child"}, depends_on=parent)["job_id"]
	engine.pause(child)
	engine.cancel(parent)  # the paused child is not Pending: the cascade leaves it
	assert engine.status(child)["status"] == "Paused"

	assert engine.resume(child)["status"] == "Canceled"

	row = engine.get_job(child)
	assert row["error_message"] == f"parent job {parent} ended Canceled"
	assert [e["to_status"] for e in engine.history(child)["entries"]][-2:] == ["Pending", "Canceled"]


def test_a_child_queued_once_resumes_to_the_queue_though_its_parent_was_purged(engine):
	parent = engine.submit("t_echo", "Acme", {"value": "parent"})["job_id"]
	child = engine.submit("t_echo", "Acme", {"value": "child"}, depends_on=parent)["job_id"]
	engine.pause(child)
	run_worker_burst(engine)  # the parent completes; the paused child waits
	assert engine.resume(child)["status"] == "Queued"
	engine.pause(child)
	assert cleanup.purge(engine, older_than_days=0) == 1  # the parent: its child's condition was met

	assert engine.resume(child)["status"] == "Queued"
	run_worker_burst(engine)
	assert engine.status(child)["status"] == "Completed"


@pytest.mark.usefixtures("worker_model")
def test_a_running_job_pauses_at_its_next_item_and_resumes_without_running_an_item_twice(
	engine, live_worker, tmp_path
):
	# Given a job running 40 items of 50 ms each
	marker = tmp_path / "calls"
	job_id = engine.submit("t_items", "Acme", {"marker": str(marker), "count": 40, "delay": 0.05})["job_id"]
	live_worker()
	wait_until(lambda: marker.exists() and len(marker.read_text().split()) >= 5, 30, "five items to run")

	# When it is paused, it stops at its next item, its outcomes so far saved
	assert engine.pause(job_id, user="ops@example.com")["status"] == "Running"  # acknowledged at once
	wait_until(lambda: engine.status(job_id)["status"] == "Paused", 10, "the job to pause")
	job = engine.get_job(job_id)
	ran = marker.read_text().split()
	assert 5 <= len(ran) < 40
	assert (job["retry_count"], job["items_done"], job["pause_requested_at"]) == (0, len(ran), None)
	assert job["paused_by"] == "ops@example.com"

	# and resumed, it runs the rest only
	engine.resume(job_id)
	wait_until(lambda: engine.status(job_id)["status"] == "Completed", 30, "the job to complete")
	keys = [line.split(":")[1] for line in marker.read_text().split()]
	assert sorted(keys) == sorted(f"r{n}" for n in range(40))  # each item once
	assert {line.split(":")[0] for line in marker.read_text().split()} == {"1"}  # no attempt used up
	assert statuses(engine, job_id) == [
		"Queued",
		"Running",
		"Running",
		"Paused",
		"Queued",
		"Running",
		"Completed",
	]
	assert engine.store.count(ITEM, [("background_job", "=", job_id), ("status", "=", "Completed")]) == 40


def test_a_paused_job_type_holds_its_queued_jobs_and_pauses_its_running_ones(engine, live_worker):
	# Given a running job of a type (it calls progress and checkpoint every 50 ms)
	running = engine.submit("t_checkpoints", "Acme", {"steps": 60, "delay": 0.05})["job_id"]
	live_worker()
	wait_until(lambda: engine.status(running)["status"] == "Running", 30, "the job to start")

	# When the type is paused, the running job pauses at its next checkpoint
	assert engine.pause_job_type("t_checkpoints", user="ops@example.com")["is_paused"] is True
	wait_until(lambda: engine.status(running)["status"] == "Paused", 10, "the running job to pause")
	assert engine.get_job(running)["paused_by"] == "Job Type"
	# and a job submitted meanwhile is taken, but stays queued, even past the scheduler's grace
	queued = engine.submit("t_checkpoints", "Acme", {"steps": 2, "delay": 0})["job_id"]
	wait_until(lambda: not engine.queue.waiting([engine.get_job(queued)["queue_job_id"]]), 10, "its message")
	scheduler.tick(engine)
	assert scheduler.redispatch_lost(engine) == 0
	assert engine.status(queued)["status"] == "Queued"
	with pytest.raises(InvalidState, match="job type t_checkpoints is paused; resume the job type"):
		engine.resume(running)

	# When the type is resumed, both run to the end
	assert engine.pause_job_type("t_checkpoints", paused=False)["resumed_jobs"] == 1
	for job_id in (running, queued):
		wait_until(
			lambda j=job_id: engine.status(j)["status"] == "Completed", 30, f"job {job_id} to complete"
		)
	assert engine.get_job(running)["retry_count"] == 0
	assert "Resumed with job type t_checkpoints" in [
		e["message"].split(" by ")[0] for e in engine.history(running)["entries"]
	]


def test_pause_and_resume_refuse_states_that_do_not_allow_them(engine):
	job_id = engine.submit("t_echo", "Acme", {"value": "x"})["job_id"]
	with pytest.raises(InvalidState, match=f"job {job_id} is Queued; only Paused jobs can be resumed"):
		engine.resume(job_id)
	engine.pause(job_id)
	with pytest.raises(
		InvalidState, match=f"job {job_id} is Paused; only Scheduled, Pending, Queued, Failed, Timed Out"
	):
		engine.pause(job_id)
	assert engine.cancel(job_id)["status"] == "Canceled"  # a paused job can still be canceled
	with pytest.raises(InvalidState, match="is Canceled"):
		engine.pause(job_id)
	with pytest.raises(InvalidState, match="job type t_echo is not paused"):
		engine.pause_job_type("t_echo", paused=False)
	with pytest.raises(NotFound, match="job type 'nope' not found"):
		engine.pause_job_type("nope")
	assert engine.history(job_id)["chain_valid"]


def test_a_scheduled_job_pauses_at_once_and_resumes_to_its_time_or_once_due_to_the_queue(engine):
	job_id = engine.submit("t_echo", "Acme", {"value": "later"}, delay="1h")["job_id"]
	run_at = engine.get_job(job_id)["run_at"]

	# Paused before its time, it is resumed to wait for that time again
	assert engine.pause(job_id)["status"] == "Paused"
	assert engine.resume(job_id)["status"] == "Scheduled"
	assert engine.get_job(job_id)["run_at"] == run_at
	assert sum(engine.queue.depth().values()) == 0

	# Paused, its time passing does not queue it; resumed once due, it is queued and runs
	engine.pause(job_id)
	engine.store.update(JOB, job_id, {"run_at": engine.now() - timedelta(seconds=1)})
	assert scheduler.queue_scheduled(engine) == 0
	assert engine.resume(job_id)["status"] == "Queued"
	run_worker_burst(engine)

	assert statuses(engine, job_id) == [
		"Scheduled", "Paused", "Scheduled", "Paused", "Queued", "Running", "Completed"
	]  # fmt: skip
	assert engine.history(job_id)["chain_valid"]


def test_a_due_job_of_a_paused_type_waits_queued(engine):
	# Given a job to run in an hour, of a job type then paused
	job_id = engine.submit("t_echo", "Acme", {"value": "later"}, delay="1h")["job_id"]
	engine.pause_job_type("t_echo")

	# Once due, the scheduler queues it as any other, and it waits with its type's queued jobs
	engine.store.update(JOB, job_id, {"run_at": engine.now() - timedelta(seconds=1)})
	assert scheduler.queue_scheduled(engine) == 1
	run_worker_burst(engine)  # its message arrives and is skipped
	assert engine.status(job_id)["status"] == "Queued"

	# Queued, it can be paused; the type's resume leaves a job its user paused to them
	assert engine.pause(job_id)["status"] == "Paused"
	assert engine.pause_job_type("t_echo", paused=False)["resumed_jobs"] == 0
	engine.resume(job_id)
	run_worker_burst(engine)

	assert statuses(engine, job_id) == ["Scheduled", "Queued", "Paused", "Queued", "Running", "Completed"]
	assert engine.history(job_id)["chain_valid"]


def test_an_attempt_that_fails_after_a_pause_request_waits_paused_instead_of_retrying(engine, live_worker):
	job_id = engine.submit("t_fails_after_pause", "Acme")["job_id"]
	live_worker()
	wait_until(lambda: engine.status(job_id)["status"] == "Running", 30, "the job to start")

	engine.pause(job_id, user="ops@example.com")

	job = wait_until(
		lambda: (j := engine.get_job(job_id))["status"] == "Paused" and j,
		10,
		"the failed attempt to pause the job",
	)
	assert (job["retry_count"], job["next_retry_at"], job["pause_requested_at"]) == (1, None, None)
	assert job["error_message"] == "TransientError: upstream unavailable"
	assert engine.history(job_id)["entries"][-1]["message"] == (
		"Paused as requested; the attempt failed: TransientError: upstream unavailable"
	)
	assert scheduler.tick(engine)["requeue_due_retries"] == 0  # no retry while paused


def test_a_job_canceled_mid_items_keeps_the_outcomes_of_the_items_it_ran(engine, live_worker, tmp_path):
	marker = tmp_path / "calls"
	job_id = engine.submit("t_items", "Acme", {"marker": str(marker), "count": 40, "delay": 0.05})["job_id"]
	live_worker()
	wait_until(lambda: marker.exists() and len(marker.read_text().split()) >= 5, 30, "five items to run")

	engine.cancel(job_id)

	wait_until(lambda: engine.status(job_id)["status"] == "Canceled", 10, "the job to stop")
	ran = len(marker.read_text().split())
	assert engine.get_job(job_id)["items_done"] == ran < 40
	assert engine.store.count(ITEM, [("background_job", "=", job_id), ("status", "=", "Completed")]) == ran
