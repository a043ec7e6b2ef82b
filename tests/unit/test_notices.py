"""The owner-notice rule (notices.py) and the engine's on_transition observers, on a real engine."""

from datetime import datetime, timedelta

import pytest

from dartwing.dartwing_core.background_jobs import Settings, scheduler
from dartwing.dartwing_core.background_jobs.executor import execute
from dartwing.dartwing_core.background_jobs.notices import DEAD_LETTER, LONG_COMPLETED, owner_notice
from dartwing.dartwing_core.background_jobs.transitions import JOB

START = datetime(2026, 12, 6, 9, 0)


def job(status: str, ran: float | None = None) -> dict:
	row = {"name": "j", "status": status, "started_at": START, "completed_at": None}
	if ran is not None:
		row["completed_at"] = START + timedelta(seconds=ran)
	return row


def test_dead_letter_always_and_completion_only_after_a_long_run():
	settings = Settings(notify_after_seconds=60)
	assert owner_notice(job("Dead Letter"), settings) == DEAD_LETTER
	assert owner_notice(job("Completed", ran=60), settings) == LONG_COMPLETED
	assert owner_notice(job("Completed", ran=59.9), settings) is None
	assert owner_notice(job("Canceled"), settings) is None
	assert owner_notice(job("Failed"), settings) is None
	assert owner_notice(job("Completed", ran=3600), Settings(notify_after_seconds=0)) is None  # 0: off


def test_the_setting_comes_from_the_environment_and_refuses_negatives():
	assert Settings.from_env({"DARTWING_NOTIFY_AFTER_SECONDS": "2.5"}).notify_after_seconds == 2.5
	assert Settings.from_env({"DARTWING_NOTIFY_AFTER_SECONDS": "0"}).notify_after_seconds == 0
	with pytest.raises(ValueError, match="DARTWING_NOTIFY_AFTER_SECONDS must be zero or more"):
		Settings.from_env({"DARTWING_NOTIFY_AFTER_SECONDS": "-1"})


def test_observers_see_each_status_change_with_the_row_before_and_after(engine):
	seen = []
	engine.on_transition = (lambda eng, before, after: seen.append((before["status"], after["status"])),)
	submitted = engine.submit("t_echo", "Acme")
	engine.cancel(engine.submit("t_echo", "Acme", {"value": "other"})["job_id"])

	execute(engine, submitted["job_id"], engine.get_job(submitted["job_id"])["queue_job_id"])

	assert seen == [("Queued", "Canceled"), ("Queued", "Running"), ("Running", "Completed")]


def test_a_failing_observer_never_fails_the_job(engine, caplog):
	def broken(eng, before, after):
		raise RuntimeError("notification service down")

	engine.on_transition = (broken,)
	submitted = engine.submit("t_echo", "Acme")

	assert (
		execute(engine, submitted["job_id"], engine.get_job(submitted["job_id"])["queue_job_id"])
		== "Completed"
	)
	assert engine.status(submitted["job_id"])["status"] == "Completed"
	assert "After-transition hook failed" in caplog.text


def test_observers_and_events_see_a_scheduler_batch_requeue(engine):
	"""The scheduler's batched transitions (transition_all) notify as single ones do."""
	failed = engine.submit("t_flaky", "Acme", {"failures": 5})["job_id"]
	assert execute(engine, failed, engine.get_job(failed)["queue_job_id"]) == "Failed"
	engine.store.update(JOB, failed, {"next_retry_at": engine.now() - timedelta(seconds=1)})
	seen = []
	engine.on_transition = (lambda eng, before, after: seen.append((before["status"], after["status"])),)
	events = engine.events.subscribe(job_id=failed, idle=0.2)
	assert next(events) is None  # subscribed

	assert scheduler.requeue_due_retries(engine) == 1

	assert seen == [("Failed", "Queued")]
	heard = next(e for e in events if e is not None)
	assert (heard["event"], heard["job_id"], heard["status"]) == ("job_status_changed", failed, "Queued")
