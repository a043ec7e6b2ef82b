"""Named steps (ctx.step) run by real workers: a completed step's saved result is reused by later
attempts (after a failure, after a crash), steps time out on their own, declared steps drive
progress, and misuse is refused with the step named."""

import json

import pytest

from dartwing.dartwing_core.background_jobs import job_handler, scheduler
from dartwing.dartwing_core.background_jobs.audit import verify_chain
from dartwing.dartwing_core.background_jobs.transitions import LOG, STEP
from tests.conftest import (
	kill_worker_and_work_horse,
	run_worker_burst,
	start_worker,
	statuses,
	wait_for_work_horse,
	wait_until,
)


def calls(marker) -> list[str]:
	return marker.read_text().split() if marker.exists() else []


def step_rows(engine, job_id: str) -> dict[str, dict]:
	rows = engine.store.get_all(STEP, [("parent", "=", job_id)], order_by="step_order asc")
	return {row["step_name"]: row for row in rows}


def notes(engine, job_id: str) -> list[str]:
	return [e["message"] for e in engine.history(job_id)["entries"] if e["from_status"] == e["to_status"]]


def test_a_retry_reuses_the_steps_completed_before_the_failure(any_engine, tmp_path):
	# Given a job whose second step fails in its first attempt
	marker = tmp_path / "calls"
	job_id = any_engine.submit("t_steps", "Acme", {"marker": str(marker), "fail_in": "classify"})["job_id"]

	run_worker_burst(any_engine)

	failed = any_engine.status(job_id)
	assert failed["status"] == "Failed"
	assert failed["progress"] == pytest.approx(100 / 3, abs=0.01)  # progress follows the declared steps
	rows = step_rows(any_engine, job_id)
	assert rows["fetch"]["status"] == "Completed"
	assert json.loads(rows["fetch"]["result"]) == {"rows": [1, 2, 3]}
	assert rows["classify"]["status"] == "Failed"
	assert rows["classify"]["error"] == "TransientError: classify failed on attempt 1"
	assert "file" not in rows

	# When the retry runs
	assert scheduler.tick(any_engine)["requeue_due_retries"] == 1
	run_worker_burst(any_engine)

	# Then fetch was not called again, and its saved result reached the handler
	done = any_engine.status(job_id)
	assert done["status"] == "Completed"
	assert done["result"] == {"rows": {"rows": [1, 2, 3]}, "kinds": [3, "invoice"]}
	assert calls(marker) == ["fetch", "classify", "classify", "file"]
	rows = step_rows(any_engine, job_id)
	assert [(r["step_name"], r["step_order"], r["status"], r["attempt"]) for r in rows.values()] == [
		("fetch", 1, "Completed", 1),
		("classify", 2, "Completed", 2),
		("file", 3, "Completed", 2),
	]
	assert all(r["parenttype"] == "Background Job" and r["parentfield"] == "steps" for r in rows.values())
	assert rows["classify"]["error"] is None and rows["file"]["result"] == "null"
	assert rows["fetch"]["duration"] >= 0 and rows["fetch"]["completed_at"] >= rows["fetch"]["started_at"]
	# and every completion and failure is in the history, whose hash chain holds
	history = any_engine.history(job_id)
	assert history["chain_valid"]
	assert [n.split(" in ")[0] for n in notes(any_engine, job_id)] == [
		"Step fetch completed",
		"Step classify failed: TransientError: classify failed on attempt 1",
		"Step classify completed",
		"Step file completed",
	]
	assert statuses(any_engine, job_id) == [
		"Queued", "Running", "Running", "Running", "Failed",  # attempt 1: fetch done, classify failed
		"Queued", "Running", "Running", "Running", "Completed",  # attempt 2: classify, file
	]  # fmt: skip


@pytest.mark.usefixtures("worker_model")
def test_a_step_completed_before_a_crash_is_not_called_again(engine, tmp_path):
	# Given a worker killed while the job runs its second step
	marker, pid_file = tmp_path / "calls", tmp_path / "horse.pid"
	job_id = engine.submit(
		"t_steps", "Acme", {"marker": str(marker), "hang_in": "classify", "pid_file": str(pid_file)}
	)["job_id"]
	worker = start_worker(engine, stdout=open(tmp_path / "worker.log", "w"))
	horse = wait_for_work_horse(engine, job_id, pid_file, "the job to reach its classify step")
	kill_worker_and_work_horse(worker, horse)
	assert step_rows(engine, job_id)["fetch"]["status"] == "Completed"

	# When the scheduler rescues the job once its lease lapses, and a worker runs it again
	wait_until(lambda: scheduler.tick(engine)["rescue_orphans"], 30, "the orphaned job to be rescued")
	wait_until(
		lambda: scheduler.tick(engine) and engine.status(job_id)["status"] == "Queued",
		30,
		lambda: f"the retry to be queued (job is {engine.status(job_id)['status']})",
	)
	run_worker_burst(engine)

	# Then the completed step was not called again; the interrupted one ran again
	assert engine.status(job_id)["status"] == "Completed"
	assert calls(marker) == ["fetch", "classify", "classify", "file"]
	assert step_rows(engine, job_id)["classify"]["attempt"] == 2


def test_a_step_past_its_timeout_times_out_the_attempt(any_engine, tmp_path):
	marker = tmp_path / "calls"
	job_id = any_engine.submit("t_step_timeout", "Acme", {"marker": str(marker)})["job_id"]

	run_worker_burst(any_engine)

	# The attempt timed out after 0.3 s (the job's own timeout is 30 s) and will be retried
	timed_out = any_engine.status(job_id)
	assert timed_out["status"] == "Timed Out"
	assert timed_out["error_type"] == "Transient"
	assert timed_out["error_message"] == "StepTimedOut: step 'slow' exceeded its timeout of 0.3s"
	slow = step_rows(any_engine, job_id)["slow"]
	assert (slow["status"], slow["timed_out"], slow["attempt"]) == ("Failed", 1, 1)
	assert 0.3 <= slow["duration"] < 3
	# Undeclared steps leave progress to the handler
	assert timed_out["progress_message"] == "my own progress"

	assert scheduler.tick(any_engine)["requeue_due_retries"] == 1
	run_worker_burst(any_engine)

	done = any_engine.status(job_id)
	assert done["status"] == "Completed" and done["result"] == {"slow": "slow done"}
	assert calls(marker) == ["quick", "slow", "slow"]
	rows = step_rows(any_engine, job_id)
	assert [(r["step_order"], r["status"], r["timed_out"]) for r in rows.values()] == [
		(1, "Completed", 0),
		(2, "Completed", 0),
	]


@pytest.mark.parametrize(
	("misuse", "problem", "ran"),
	[
		("undeclared", "ValidationError: step: 'two' is not a step its handler declares (one)", []),
		(
			"twice",
			"ValidationError: step: 'one' already ran in this attempt; a step name is used once",
			["one"],
		),
		("not_json", "ValidationError: step result: is not JSON-serializable", ["one"]),
	],
)
def test_misused_steps_fail_the_job_permanently_naming_the_problem(engine, tmp_path, misuse, problem, ran):
	marker = tmp_path / "calls"
	job_id = engine.submit("t_step_misuse", "Acme", {"misuse": misuse, "marker": str(marker)})["job_id"]

	run_worker_burst(engine)

	job = engine.status(job_id)
	assert job["status"] == "Dead Letter"
	assert job["error_type"] == "Permanent"
	assert job["error_message"].startswith(problem)
	assert calls(marker) == ran
	rows = step_rows(engine, job_id)
	if misuse == "twice":  # the first run completed and is kept
		assert rows["one"]["status"] == "Completed"
	elif misuse == "not_json":  # the step ran, but its result could not be kept
		assert rows["one"]["status"] == "Failed" and rows["one"]["result"] is None
	else:
		assert rows == {}
	assert engine.history(job_id)["chain_valid"]


def test_purge_deletes_a_jobs_steps_with_it(engine, tmp_path):
	from dartwing.dartwing_core.background_jobs.cleanup import purge

	job_id = engine.submit("t_steps", "Acme", {"marker": str(tmp_path / "calls")})["job_id"]
	run_worker_burst(engine)
	assert len(step_rows(engine, job_id)) == 3

	assert purge(engine, older_than_days=0) == 1

	assert step_rows(engine, job_id) == {}
	assert engine.store.get_all(LOG, [("background_job", "=", job_id)]) == []


@pytest.mark.parametrize(
	("steps", "problem"),
	[
		(["a", "a"], "must not repeat a name"),
		(["a", ""], "must be non-empty names"),
		(["x" * 141], "at most 140 characters"),
		([3], "must be non-empty names"),
	],
)
def test_bad_step_declarations_are_refused_when_the_module_loads(steps, problem):
	with pytest.raises(ValueError, match=problem):
		job_handler("t_bad_steps", steps=steps)


def test_chain_of_a_job_with_steps_verifies_row_by_row(engine, tmp_path):
	"""The notes are links of the job's chain like any transition: removing one breaks it."""
	job_id = engine.submit("t_steps", "Acme", {"marker": str(tmp_path / "calls")})["job_id"]
	run_worker_burst(engine)
	logs = engine.store.get_all(LOG, [("background_job", "=", job_id)], order_by="sequence asc")
	job = engine.store.get("Background Job", job_id)
	assert verify_chain(job["chain_head"], logs).ok

	without_a_note = [row for row in logs if not row["message"].startswith("Step classify")]

	assert not verify_chain(job["chain_head"], without_a_note).ok
