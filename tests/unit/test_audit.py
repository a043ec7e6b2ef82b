"""The hash-chained Job Execution Log: history reads back valid, and edits or deletions are detected."""

from datetime import datetime, timedelta

import pytest

from dartwing.dartwing_core.background_jobs.audit import _CHAINED_FIELDS, GENESIS, verify_chain
from dartwing.dartwing_core.background_jobs.executor import execute
from dartwing.dartwing_core.background_jobs.transitions import LOG, log_row

# -- through a real store ---------------------------------------------------------------------


def log_rows(engine, job_id: str) -> list[dict]:
	return engine.store.get_all(LOG, [("background_job", "=", job_id)], order_by="sequence asc")


@pytest.fixture
def canceled_job(engine) -> str:
	job_id = engine.submit("t_echo", "Acme", {"value": "audit"}, user="alice@example.com")["job_id"]
	engine.cancel(job_id, user="bob@example.com")
	return job_id


@pytest.fixture
def completed_job(engine) -> str:
	job_id = engine.submit("t_echo", "Acme", {"value": "audit-run"})["job_id"]
	assert execute(engine, job_id, engine.get_job(job_id)["queue_job_id"]) == "Completed"
	return job_id


def test_history_of_an_untouched_job_is_valid(engine, canceled_job):
	history = engine.history(canceled_job)

	assert history["chain_valid"] is True
	assert history["chain_problem"] is None
	assert [(e["from_status"], e["to_status"]) for e in history["entries"]] == [
		(None, "Queued"),
		("Queued", "Canceled"),
	]
	assert [e["actor"] for e in history["entries"]] == ["alice@example.com", "bob@example.com"]


def test_history_of_a_run_job_is_valid(engine, completed_job):
	history = engine.history(completed_job)

	assert history["chain_valid"] is True
	assert [e["to_status"] for e in history["entries"]] == ["Queued", "Running", "Completed"]


def test_editing_a_message_in_the_database_is_detected(engine, canceled_job):
	first = log_rows(engine, canceled_job)[0]

	engine.store.update(LOG, first["name"], {"message": "edited"})

	history = engine.history(canceled_job)
	assert history["entries"][0]["message"] == "edited"
	assert history["chain_valid"] is False
	assert history["chain_problem"] == "row content was changed"


def test_rewriting_an_outcome_is_detected(engine, canceled_job):
	# Given someone turns the cancellation into a completion after the fact
	last = log_rows(engine, canceled_job)[-1]
	engine.store.update(LOG, last["name"], {"to_status": "Completed"})

	# Then the history says so
	history = engine.history(canceled_job)
	assert history["chain_valid"] is False
	assert history["chain_problem"] == "row content was changed"


def test_shifting_a_timestamp_by_one_microsecond_is_detected(engine, canceled_job):
	first = log_rows(engine, canceled_job)[0]

	engine.store.update(LOG, first["name"], {"timestamp": first["timestamp"] + timedelta(microseconds=1)})

	assert engine.history(canceled_job)["chain_valid"] is False


def test_deleting_the_last_log_row_is_detected(engine, canceled_job):
	last = log_rows(engine, canceled_job)[-1]

	engine.store.delete(LOG, [("name", "=", last["name"])])

	history = engine.history(canceled_job)
	assert [e["to_status"] for e in history["entries"]] == ["Queued"]
	assert history["chain_valid"] is False
	assert history["chain_problem"] == "rows after the last one were removed"


def test_deleting_a_row_in_the_middle_is_detected(engine, completed_job):
	middle = log_rows(engine, completed_job)[1]

	engine.store.delete(LOG, [("name", "=", middle["name"])])

	history = engine.history(completed_job)
	assert history["chain_valid"] is False
	assert history["chain_problem"] == "row 2 is missing"


def test_relinking_a_row_to_hide_a_deletion_is_detected(engine, completed_job):
	# Given the Running row is deleted and the Completed row renumbered to take its place
	first, middle, last = log_rows(engine, completed_job)
	engine.store.delete(LOG, [("name", "=", middle["name"])])
	engine.store.update(LOG, last["name"], {"sequence": 2, "previous_hash": first["entry_hash"]})

	history = engine.history(completed_job)
	assert history["chain_valid"] is False
	assert history["chain_problem"] == "row content was changed"


def test_appending_a_forged_row_is_detected(engine, canceled_job):
	# Given a correctly linked row added after the job's last real transition
	job = engine.get_job(canceled_job)
	forged = log_row(job, "Completed", job["modified"], "mallory", "Completed in 1.000s", 0)
	engine.store.insert(LOG, forged)

	history = engine.history(canceled_job)
	assert len(history["entries"]) == 3
	assert history["chain_valid"] is False
	assert history["chain_problem"] == "row 3 was added after the job's last transition"


# -- on plain rows ----------------------------------------------------------------------------


def chain(*statuses: str) -> tuple[str, list[dict]]:
	"""Log rows for a job that went through `statuses`, and the job's chain head."""
	job = {"name": "job1", "status": None, "transition_count": 0, "chain_head": None}
	rows = []
	start = datetime(2024, 5, 17, 9, 30, 0, 123456)
	for i, status in enumerate(statuses):
		row = log_row(job, status, start + timedelta(seconds=i), "worker", f"to {status}", 0)
		rows.append(row)
		job = {**job, "status": status, "transition_count": row["sequence"], "chain_head": row["entry_hash"]}
	return job["chain_head"], rows


def test_verify_chain_accepts_an_intact_chain():
	head, rows = chain("Queued", "Running", "Failed", "Queued", "Running", "Completed")

	report = verify_chain(head, rows)

	assert report.ok
	assert report.entries == 6
	assert report.problem == ""


def test_rows_link_from_the_genesis_hash():
	head, rows = chain("Queued", "Running")

	assert rows[0]["previous_hash"] == GENESIS
	assert rows[1]["previous_hash"] == rows[0]["entry_hash"]
	assert head == rows[1]["entry_hash"]


def test_a_job_without_history_verifies_only_without_a_head():
	head, _rows = chain("Queued")

	assert verify_chain(None, []).ok
	report = verify_chain(head, [])
	assert not report.ok
	assert report.problem == "rows after the last one were removed"


@pytest.mark.parametrize("field", _CHAINED_FIELDS)
def test_changing_any_chained_field_breaks_the_chain_at_that_row(field):
	head, rows = chain("Queued", "Running", "Completed")
	original = rows[1][field]
	if isinstance(original, datetime):
		changed = original + timedelta(microseconds=1)
	elif isinstance(original, int):
		changed = original + 10
	else:
		changed = f"{original}!"
	rows[1] = {**rows[1], field: changed}

	report = verify_chain(head, rows)

	assert not report.ok
	assert report.broken_at == (12 if field == "sequence" else 2)


def test_a_changed_row_is_reported_at_its_sequence():
	head, rows = chain("Queued", "Running", "Completed")
	rows[1] = {**rows[1], "actor": "mallory"}

	report = verify_chain(head, rows)

	assert (report.ok, report.broken_at, report.problem) == (False, 2, "row content was changed")


def test_a_missing_first_row_is_reported():
	head, rows = chain("Queued", "Running", "Completed")

	report = verify_chain(head, rows[1:])

	assert (report.ok, report.broken_at, report.problem) == (False, 2, "row 1 is missing")


def test_a_wrong_previous_hash_is_reported():
	head, rows = chain("Queued", "Running", "Completed")
	rows[2] = {**rows[2], "previous_hash": GENESIS}

	report = verify_chain(head, rows)

	assert (report.ok, report.broken_at, report.problem) == (False, 3, "previous_hash does not match")


def test_a_truncated_chain_is_reported():
	head, rows = chain("Queued", "Running", "Completed")

	report = verify_chain(head, rows[:2])

	assert (report.ok, report.broken_at, report.problem) == (False, 3, "rows after the last one were removed")


def test_rows_added_after_the_head_are_reported():
	head, _ = chain("Queued", "Running")
	_, longer = chain("Queued", "Running", "Completed")

	report = verify_chain(head, longer)

	assert (report.ok, report.broken_at) == (False, 3)
	assert report.problem == "row 3 was added after the job's last transition"
