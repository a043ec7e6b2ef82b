"""Items (ctx.each) run by real workers: each item recorded once with its checksum, outcomes and
live counts saved in batches, a retry runs only the failed items, a run after a crash only the
unfinished ones, and bad items are refused before any is written."""

import pytest

from dartwing.dartwing_core.background_jobs import InvalidState, ValidationError, scheduler
from dartwing.dartwing_core.background_jobs.transitions import ITEM
from tests.conftest import (
	dispose,
	kill_worker_and_work_horse,
	make_db_url,
	make_engine,
	run_worker_burst,
	start_worker,
	wait_for_work_horse,
	wait_until,
)


def calls(marker) -> list[tuple[int, str, str]]:
	"""(attempt, row id, ctx.item_key) of every call of the item function."""
	if not marker.exists():
		return []
	return [
		(int(a), key, item_key)
		for a, key, item_key in (line.split(":", 2) for line in marker.read_text().split())
	]


def items(engine, job_id: str) -> dict[str, dict]:
	rows = engine.store.get_all(ITEM, [("background_job", "=", job_id)], order_by="item_index asc")
	return {row["item_key"]: row for row in rows}


def test_a_retry_runs_only_the_failed_items(any_engine, tmp_path):
	# Given ten rows, two of which fail in the first attempt and one is skipped
	marker = tmp_path / "calls"
	job_id = any_engine.submit("t_items", "Acme", {"marker": str(marker), "fail": [3, 7], "skip": [5]})[
		"job_id"
	]

	run_worker_burst(any_engine)

	# Then the attempt failed after every item ran, and the job counts each outcome
	failed = any_engine.status(job_id)
	assert failed["status"] == "Failed"
	assert failed["error_message"] == (
		"ItemsFailed: 2 of 10 items failed (max_failed_items 0); a retry runs the failed items again"
	)
	assert failed["items"] == {"total": 10, "done": 7, "failed": 2, "skipped": 1}
	assert failed["progress"] == 100
	assert [key for _, key, _ in calls(marker)] == [f"r{n}" for n in range(10)]
	rows = items(any_engine, job_id)
	assert [row["item_index"] for row in rows.values()] == list(range(10))
	assert (rows["r3"]["status"], rows["r3"]["error_type"], rows["r3"]["error_message"]) == (
		"Failed",
		"ValueError",
		"row 3 has no amount",
	)
	assert (rows["r5"]["status"], rows["r5"]["error_message"]) == ("Skipped", "row 5 is a duplicate")
	assert (rows["r4"]["status"], rows["r4"]["result"], rows["r4"]["attempt"]) == (
		"Completed",
		'{"double":8}',
		1,
	)
	assert len({row["checksum"] for row in rows.values()}) == 10
	assert all(len(row["checksum"]) == 64 for row in rows.values())
	page = any_engine.job_items(job_id, status="Failed")
	assert [(i["key"], i["error_message"]) for i in page["items"]] == [
		("r3", "row 3 has no amount"),
		("r7", "row 7 has no amount"),
	]
	assert page["total"] == 2

	# When the retry runs
	assert scheduler.tick(any_engine)["requeue_due_retries"] == 1
	run_worker_burst(any_engine)

	# Then only the two failed items ran again, with the same idempotency keys
	done = any_engine.status(job_id)
	assert done["status"] == "Completed"
	assert done["result"] == {"total": 10, "done": 9, "failed": 0, "skipped": 1}
	assert done["items"] == {"total": 10, "done": 9, "failed": 0, "skipped": 1}
	second = [c for c in calls(marker) if c[0] == 2]
	assert second == [(2, "r3", f"{job_id}:r3"), (2, "r7", f"{job_id}:r7")]
	first_keys = {key: item_key for attempt, key, item_key in calls(marker) if attempt == 1}
	assert first_keys["r3"] == f"{job_id}:r3"
	rows = items(any_engine, job_id)
	assert (rows["r3"]["status"], rows["r3"]["attempt"], rows["r3"]["error_message"]) == (
		"Completed",
		2,
		None,
	)
	assert any_engine.history(job_id)["chain_valid"]


@pytest.mark.usefixtures("worker_model")
def test_a_worker_killed_mid_items_resumes_with_only_the_unfinished_ones(engine, tmp_path):
	# Given a worker killed while running item 40 of 60 (each item takes 50 ms; outcomes are
	# written at least every second)
	marker, pid_file = tmp_path / "calls", tmp_path / "horse.pid"
	job_id = engine.submit(
		"t_items",
		"Acme",
		{"marker": str(marker), "count": 60, "hang_at": 40, "pid_file": str(pid_file), "delay": 0.05},
	)["job_id"]
	worker = start_worker(engine, stdout=open(tmp_path / "worker.log", "w"))
	horse = wait_for_work_horse(engine, job_id, pid_file, "the job to reach item 40")
	kill_worker_and_work_horse(worker, horse)
	unfinished = {key for key, row in items(engine, job_id).items() if row["status"] == "Pending"}
	saved = engine.get_job(job_id)["items_done"]
	# at most one batch (about a second of work: 20 items, and the one that hung) was not saved
	assert 40 - 21 <= saved <= 40 and len(unfinished) == 60 - saved

	# When the scheduler rescues the job and a worker runs it again
	wait_until(lambda: scheduler.tick(engine)["rescue_orphans"], 30, "the orphaned job to be rescued")
	wait_until(
		lambda: scheduler.tick(engine) and engine.status(job_id)["status"] == "Queued",
		30,
		lambda: f"the retry to be queued (job is {engine.status(job_id)['status']})",
	)
	run_worker_burst(engine)

	# Then exactly the unfinished items ran again, and every item is done once in its final state
	job = engine.status(job_id)
	assert job["status"] == "Completed"
	assert job["items"] == {"total": 60, "done": 60, "failed": 0, "skipped": 0}
	assert {key for attempt, key, _ in calls(marker) if attempt == 2} == unfinished
	assert len([c for c in calls(marker) if c[0] == 2]) == len(unfinished)
	assert {row["status"] for row in items(engine, job_id).values()} == {"Completed"}


def test_max_failed_items_lets_the_job_complete_with_that_many_failures(engine, tmp_path):
	marker = tmp_path / "calls"
	one = engine.submit("t_items_tolerant", "Acme", {"marker": str(marker), "fail": [2]})["job_id"]
	two = engine.submit("t_items_tolerant", "Acme", {"marker": str(marker), "fail": [1, 2]})["job_id"]

	run_worker_burst(engine)

	assert engine.status(one)["status"] == "Completed"
	assert engine.status(one)["items"] == {"total": 5, "done": 4, "failed": 1, "skipped": 0}
	assert engine.status(two)["status"] == "Dead Letter"  # max_retries 0
	assert engine.status(two)["error_message"].startswith("retries exhausted (0/0): ItemsFailed: 2 of 5")


def test_retry_of_failed_items_only(engine, tmp_path):
	# Given a job dead-lettered with two failed items (rows 1 and 3 fail while `flag` exists)
	marker, flag = tmp_path / "calls", tmp_path / "failing"
	flag.touch()
	params = {"marker": str(marker), "fail": [1, 3], "fail_flag": str(flag)}
	job_id = engine.submit("t_items_tolerant", "Acme", params)["job_id"]
	run_worker_burst(engine)
	assert engine.status(job_id)["status"] == "Dead Letter"
	no_items = engine.submit("t_permanent", "Acme")["job_id"]
	run_worker_burst(engine)

	# When the cause is fixed and an admin retries its failed items
	flag.unlink()
	queued = engine.retry(job_id, user="admin@example.com", failed_items_only=True)
	run_worker_burst(engine)

	# Then only those ran
	assert queued["status"] == "Queued"
	assert engine.status(job_id)["status"] == "Completed"
	assert engine.status(job_id)["items"] == {"total": 5, "done": 5, "failed": 0, "skipped": 0}
	assert [key for _, key, _ in calls(marker)][5:] == ["r1", "r3"]
	assert [e["message"] for e in engine.history(job_id)["entries"]][-3] == (
		"Retried by admin@example.com: its 2 failed items"
	)
	# and a job with no failed item is refused
	assert engine.status(no_items)["status"] == "Dead Letter"
	with pytest.raises(InvalidState, match=f"job {no_items} has no failed items to retry"):
		engine.retry(no_items, failed_items_only=True)
	with pytest.raises(ValidationError, match="failed_items_only: must be true or false"):
		engine.retry(job_id, failed_items_only="yes")


@pytest.mark.parametrize(
	("misuse", "problem"),
	[
		("repeated_key", "ValidationError: key: repeats: every item needs a key of its own"),
		("empty_key", "ValidationError: key of item 3: must be a non-empty string of at most 140 characters"),
		("long_key", "ValidationError: key of item 3: must be a non-empty string of at most 140 characters"),
		("not_json", "ValidationError: item 3: is not JSON-serializable"),
		("generator", "ValidationError: items: are read twice (recorded, then processed)"),
	],
)
def test_bad_items_are_refused_before_any_is_written(engine, misuse, problem):
	job_id = engine.submit("t_items_misuse", "Acme", {"misuse": misuse})["job_id"]

	run_worker_burst(engine)

	job = engine.status(job_id)
	assert job["status"] == "Dead Letter"
	assert job["error_message"].startswith(problem), job["error_message"]
	assert items(engine, job_id) == {}
	assert job["items"]["total"] == 0


def test_more_items_than_the_limit_are_refused(tmp_path, redis_url):
	engine = make_engine(make_db_url("sqlite", tmp_path), redis_url, max_items=4)
	try:
		job_id = engine.submit("t_items_misuse", "Acme", {"misuse": "none", "count": 5})["job_id"]
		run_worker_burst(engine)
		job = engine.status(job_id)
		assert job["error_message"].startswith("ValidationError: items: are more than 4 (DARTWING_MAX_ITEMS)")
		assert items(engine, job_id) == {}
	finally:
		dispose(engine)


def test_an_item_result_that_is_not_json_fails_that_item(engine):
	job_id = engine.submit("t_items_misuse", "Acme", {"misuse": "result_not_json"})["job_id"]

	run_worker_burst(engine)

	rows = items(engine, job_id)
	assert rows["r2"]["status"] == "Failed"
	assert rows["r2"]["error_type"] == "ValidationError"
	assert rows["r2"]["error_message"].startswith("item result: is not JSON-serializable")
	assert engine.status(job_id)["items"] == {"total": 5, "done": 4, "failed": 1, "skipped": 0}


def test_job_items_pages_and_checks_its_input(engine, tmp_path):
	job_id = engine.submit("t_items", "Acme", {"marker": str(tmp_path / "calls"), "count": 30})["job_id"]
	run_worker_burst(engine)

	page = engine.job_items(job_id, limit=10, offset=20)
	assert [item["key"] for item in page["items"]] == [f"r{n}" for n in range(20, 30)]
	assert page["total"] == 30 and page["items"][0]["result"] == {"double": 40}
	with pytest.raises(ValidationError, match="status: must be one of Pending, Completed, Failed, Skipped"):
		engine.job_items(job_id, status="Done")
	with pytest.raises(ValidationError, match="limit: must be an integer from 1 to 100"):
		engine.job_items(job_id, limit=0)


def test_the_sample_import_runs_its_rows_through_steps_and_items(engine, tmp_path):
	ledger = tmp_path / "ledger"
	ledger.mkdir()
	job_id = engine.submit("import_rows", "Acme", {"rows": 30, "delay": 0, "ledger": str(ledger)})["job_id"]

	run_worker_burst(engine)

	job = engine.status(job_id)
	assert job["status"] == "Completed", job["error_message"]
	assert job["result"] == {
		"total": 30,
		"done": 30,
		"failed": 0,
		"skipped": 0,
		"output_reference": f"/files/import-{job_id}.csv",
	}
	assert job["progress"] == 100
	assert sorted(path.name for path in ledger.iterdir()) == sorted(f"{job_id}-row-{n}" for n in range(30))
	steps = engine.store.get_all("Background Job Step", [("parent", "=", job_id)], order_by="step_order asc")
	assert [(s["step_name"], s["status"]) for s in steps] == [
		("fetch", "Completed"),
		("import", "Completed"),
		("report", "Completed"),
	]
