"""Jobs run by real RQ worker processes: success, progress, results, retries, dead letter, timeouts."""

from tests.conftest import run_worker_burst


def test_job_runs_to_completion_with_result_and_progress(any_engine):
	job = any_engine.submit(
		"t_echo", "Acme", {"value": "report.pdf", "progress_steps": 4}, user="alice@example.com"
	)
	assert job["status"] == "Queued"

	output = run_worker_burst(any_engine)

	done = any_engine.status(job["job_id"])
	assert done["status"] == "Completed"
	assert done["progress"] == 100
	assert done["progress_message"] == "4/4"
	assert done["output_reference"] == "/files/report.pdf"
	assert done["result"] == {
		"output_reference": "/files/report.pdf",
		"value": "report.pdf",
		"attempt": 1,
		"user": "alice@example.com",
	}
	assert done["started_at"] <= done["completed_at"]
	assert "Job started job_id=" + job["job_id"] in output.stderr
	assert "Job succeeded job_id=" + job["job_id"] in output.stderr
	history = any_engine.history(job["job_id"])
	assert [e["to_status"] for e in history["entries"]] == ["Queued", "Running", "Completed"]
	assert history["chain_valid"]
