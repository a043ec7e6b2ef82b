"""The `dartwing-jobs` console entry point, run as a real subprocess against the fixture engine's
database, Redis and queue prefix: --json documents, exit codes, and the human output."""

import json
import subprocess
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from dartwing.dartwing_core.background_jobs import admin
from dartwing.dartwing_core.background_jobs.executor import execute
from dartwing.dartwing_core.background_jobs.transitions import JOB, LOG
from tests.conftest import CLI, process_env

EXIT_OK, EXIT_BAD_INPUT, EXIT_DUPLICATE, EXIT_NOT_FOUND, EXIT_NOT_ALLOWED = 0, 2, 3, 4, 5


def run_cli(engine, *args: str, as_json: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
	command = [*CLI, *args, *(["--json"] if as_json else [])]
	return subprocess.run(command, env=process_env(engine), capture_output=True, text=True, timeout=timeout)


def cli_json(engine, *args: str, expect: int = EXIT_OK):
	"""Run a command with --json; check its exit code and that stdout is exactly one JSON document."""
	result = run_cli(engine, *args)
	assert result.returncode == expect, f"exit {result.returncode}\n{result.stdout}\n{result.stderr[-3000:]}"
	return json.loads(result.stdout)


def run_in_process(engine, job_id: str) -> str:
	return execute(engine, job_id, engine.get_job(job_id)["queue_job_id"])


def parse_iso(value: str) -> datetime:
	parsed = datetime.fromisoformat(value)
	assert parsed.utcoffset() == timedelta(0), value
	return parsed


def rows(engine) -> tuple[int, int]:
	return engine.store.count(JOB), engine.store.count(LOG)


# -- init and organizations ---------------------------------------------------------------------


def test_init_creates_schema_and_job_types_on_a_fresh_database(engine, tmp_path):
	fresh = f"sqlite:///{tmp_path / 'fresh.db'}"

	first = cli_json(engine, "init", "--db", fresh)
	again = cli_json(engine, "init", "--db", fresh)

	assert {"t_echo", "t_flaky", "sample_job"} <= set(first["job_types_created"])
	assert sorted(first["job_types_created"]) == first["job_types"]
	assert again["job_types_created"] == []
	assert again["job_types"] == first["job_types"]


def test_init_creates_missing_job_types_and_keeps_admin_edits(engine):
	engine.store.delete("Job Type", [("name", "=", "t_echo")])
	engine.store.update("Job Type", "t_flaky", {"max_retries": 9})

	report = cli_json(engine, "init")

	assert report["job_types_created"] == ["t_echo"]
	assert engine.store.get("Job Type", "t_echo") is not None
	assert engine.store.get("Job Type", "t_flaky")["max_retries"] == 9


def test_org_add_suspend_resume_controls_submission(engine):
	added = cli_json(engine, "org", "add", "Initech", "--max-queued", "5", "--max-in-flight", "2")
	assert added == {
		"organization": "Initech",
		"status": "Active",
		"max_queued_jobs": 5,
		"max_in_flight_jobs": 2,
	}

	suspended = cli_json(engine, "org", "suspend", "Initech")
	assert suspended["status"] == "Suspended"
	refused = cli_json(engine, "submit", "t_echo", "--org", "Initech", expect=EXIT_BAD_INPUT)
	assert refused["field"] == "organization"

	resumed = cli_json(engine, "org", "resume", "Initech")
	assert resumed["status"] == "Active"
	job = cli_json(engine, "submit", "t_echo", "--org", "Initech")
	assert job["status"] == "Queued"


def test_org_commands_report_unknown_and_existing_organizations(engine):
	cli_json(engine, "org", "suspend", "Nobody", expect=EXIT_NOT_FOUND)
	cli_json(engine, "org", "add", "Acme", expect=EXIT_DUPLICATE)
	assert engine.store.get("Organization", "Acme")["status"] == "Active"


# -- submit -------------------------------------------------------------------------------------


def test_submit_prints_the_queued_job_with_iso_timestamps(engine):
	before = datetime.now(timezone.utc)

	job = cli_json(
		engine,
		"submit",
		"t_echo",
		"--org",
		"Acme",
		"--params",
		'{"value": "report.pdf"}',
		"--priority",
		"High",
		"--user",
		"alice@example.com",
	)

	assert job["status"] == "Queued"
	assert job["job_type"] == "t_echo"
	assert job["organization"] == "Acme"
	assert job["priority"] == "High"
	assert job["parameters"] == {"value": "report.pdf"}
	assert job["owner_user"] == "alice@example.com"
	assert job["triggered_by"] == "cli"
	for field in ("job_id", "progress", "retry_count", "next_retry_at", "error_message", "output_reference"):
		assert field in job
	created = parse_iso(job["created_at"])
	assert before - timedelta(seconds=1) <= created <= datetime.now(timezone.utc)
	assert parse_iso(job["queued_at"]) == created
	assert job["started_at"] is None
	stored = engine.get_job(job["job_id"])
	assert stored["status"] == "Queued"
	assert stored["priority"] == "High"


def test_submit_duplicate_exits_3_naming_the_existing_job(engine):
	first = cli_json(engine, "submit", "t_echo", "--org", "Acme", "--params", '{"value": "a"}')

	duplicate = cli_json(
		engine, "submit", "t_echo", "--org", "Acme", "--params", '{"value":"a"}', expect=EXIT_DUPLICATE
	)

	assert duplicate["existing_job"] == first["job_id"]
	assert duplicate["existing_status"] == "Queued"
	assert engine.store.count(JOB) == 1


@pytest.mark.parametrize(
	("args", "field"),
	[
		(["no_such_type", "--org", "Acme"], "job_type"),
		(["t_echo", "--org", "Acme", "--params", "{not json"], "parameters"),
		(["t_echo", "--org", "Acme", "--params", "[1, 2]"], "parameters"),
		(["t_echo", "--org", "Acme", "--params", '{"no_such_argument": 1}'], "parameters"),
		(["t_echo", "--org", "Acme", "--priority", "Urgent"], "priority"),
		(["t_echo", "--org", "Umbrella"], "organization"),
		(["t_echo", "--org", "Acme", "--depends-on", "nosuchjob"], "depends_on"),
		(["t_echo", "--org", "Acme", "--at", "noon"], "run_at"),
		(["t_echo", "--org", "Acme", "--at", "2099-01-01T00:00:00Z"], "run_at"),
		(["t_echo", "--org", "Acme", "--in", "10 parsecs"], "delay"),
		(["t_echo", "--org", "Acme", "--in", "400d"], "delay"),
	],
)
def test_bad_input_exits_2_names_the_field_and_writes_nothing(engine, args, field):
	before = rows(engine)

	result = run_cli(engine, "submit", *args)

	assert result.returncode == EXIT_BAD_INPUT, result.stderr
	assert json.loads(result.stdout)["field"] == field
	assert f"{field}:" in result.stderr
	assert rows(engine) == before
	assert sum(engine.queue.depth().values()) == 0


def test_submit_in_and_at_schedule_the_job(engine):
	delayed = cli_json(engine, "submit", "t_echo", "--org", "Acme", "--in", "10m")
	due = (datetime.now(timezone.utc) + timedelta(days=30)).replace(microsecond=0)
	text = due.astimezone(timezone(timedelta(hours=1))).isoformat()
	at = cli_json(engine, "submit", "t_echo", "--org", "Globex", "--at", text)

	assert delayed["status"] == at["status"] == "Scheduled"
	assert (
		timedelta(minutes=9)
		< parse_iso(delayed["run_at"]) - datetime.now(timezone.utc)
		<= timedelta(minutes=10)
	)
	assert parse_iso(at["run_at"]) == due
	assert sum(engine.queue.depth().values()) == 0
	listed = cli_json(engine, "list", "--status", "Scheduled")
	assert listed["total"] == 2


def test_schedule_commands(engine):
	added = cli_json(
		engine, "schedule", "add", "t_echo", "--org", "Acme", "--cron", "0 6 * * 1-5", "--tz", "Europe/Paris"
	)
	schedule_id = added["schedule_id"]
	every = cli_json(
		engine, "schedule", "add", "t_echo", "--org", "Globex", "--every", "15m", "--overlap", "allow"
	)

	assert len(added["upcoming"]) == 5 and added["next_run_at"] == added["upcoming"][0]
	assert all(
		datetime.fromisoformat(t).astimezone(ZoneInfo("Europe/Paris")).hour == 6 for t in added["upcoming"]
	)
	assert every["interval_seconds"] == 900 and every["overlap_policy"] == "Allow"
	assert {s["schedule_id"] for s in cli_json(engine, "schedule", "list", "--org", "Acme")["schedules"]} == {
		schedule_id
	}
	assert cli_json(engine, "schedule", "pause", schedule_id)["enabled"] is False
	assert cli_json(engine, "schedule", "resume", schedule_id)["enabled"] is True
	job = cli_json(engine, "schedule", "run-now", schedule_id)
	assert job["status"] == "Queued" and job["triggered_by"] == "schedule"
	shown = cli_json(engine, "schedule", "show", schedule_id)
	assert [j["job_id"] for j in shown["jobs"]] == [job["job_id"]]
	assert cli_json(engine, "schedule", "delete", schedule_id) == {"deleted": schedule_id}
	assert cli_json(engine, "schedule", "pause", schedule_id, expect=EXIT_NOT_FOUND)["error"] == "NotFound"


@pytest.mark.parametrize(
	("args", "field"),
	[
		(["--cron", "0 0 30 2 *"], "cron"),
		(["--cron", "0 0 * *"], "cron"),
		(["--cron", "0 * * * *", "--tz", "Nowhere/Special"], "time_zone"),
		(["--every", "0.1s"], "interval_seconds"),
		(["--every", "soon"], "interval_seconds"),
		(["--cron", "0 * * * *", "--params", '{"nope": 1}'], "parameters"),
	],
)
def test_bad_schedules_exit_2_naming_the_field(engine, args, field):
	document = cli_json(engine, "schedule", "add", "t_echo", "--org", "Acme", *args, expect=EXIT_BAD_INPUT)

	assert document["field"] == field
	assert engine.store.count("Job Schedule") == 0


# -- status, cancel, retry ----------------------------------------------------------------------


def test_status_of_unknown_job_exits_4(engine):
	error = cli_json(engine, "status", "doesnotexist", expect=EXIT_NOT_FOUND)
	assert error["error"] == "NotFound"
	assert "doesnotexist" in error["message"]
	cli_json(engine, "history", "doesnotexist", expect=EXIT_NOT_FOUND)
	cli_json(engine, "cancel", "doesnotexist", expect=EXIT_NOT_FOUND)


def test_cancel_of_completed_job_exits_5_and_changes_nothing(engine):
	job = engine.submit("t_echo", "Acme", {"value": "done"})
	run_in_process(engine, job["job_id"])

	error = cli_json(engine, "cancel", job["job_id"], expect=EXIT_NOT_ALLOWED)

	assert error["error"] == "InvalidState"
	assert engine.status(job["job_id"])["status"] == "Completed"
	assert engine.status(job["job_id"])["canceled_by"] is None


def test_cancel_of_queued_job_cancels_it(engine):
	job = engine.submit("t_echo", "Acme", {"value": "unwanted"})

	canceled = cli_json(engine, "cancel", job["job_id"], "--user", "bob@example.com")

	assert canceled["status"] == "Canceled"
	assert canceled["canceled_by"] == "bob@example.com"
	parse_iso(canceled["canceled_at"])
	assert engine.status(job["job_id"])["status"] == "Canceled"


def test_retry_of_queued_job_exits_5(engine):
	job = engine.submit("t_echo", "Acme", {"value": "waiting"})

	error = cli_json(engine, "retry", job["job_id"], expect=EXIT_NOT_ALLOWED)

	assert error["error"] == "InvalidState"
	assert engine.history(job["job_id"])["entries"][-1]["to_status"] == "Queued"
	assert len(engine.history(job["job_id"])["entries"]) == 1


def test_retry_of_dead_letter_job_queues_it_again(engine):
	job = engine.submit("t_permanent", "Acme")
	assert run_in_process(engine, job["job_id"]) == "Dead Letter"

	retried = cli_json(engine, "retry", job["job_id"])

	assert retried["status"] == "Queued"
	assert retried["retry_count"] == 0
	assert retried["error_message"] is None
	assert engine.history(job["job_id"])["entries"][-1]["message"] == "Retried by Administrator"


# -- list ---------------------------------------------------------------------------------------


@pytest.fixture
def listed(engine):
	"""Five jobs created an hour apart (oldest first): Acme t_echo x3, Acme t_flaky, Globex t_echo;
	the second is Completed."""
	base = datetime(2024, 5, 1, 8, 0, 0)
	specs = [
		("t_echo", "Acme", {"value": "1"}),
		("t_echo", "Acme", {"value": "2"}),
		("t_flaky", "Acme", {"failures": 0}),
		("t_echo", "Globex", {"value": "4"}),
		("t_echo", "Acme", {"value": "5"}),
	]
	ids = []
	for hour, (job_type, org, params) in enumerate(specs):
		job_id = engine.submit(job_type, org, params)["job_id"]
		engine.store.update(JOB, job_id, {"creation": base + timedelta(hours=hour)})
		ids.append(job_id)
	run_in_process(engine, ids[1])
	return ids


def test_list_is_newest_first_with_total_limit_and_offset(engine, listed):
	page = cli_json(engine, "list")
	assert page["total"] == 5
	assert (page["limit"], page["offset"]) == (20, 0)
	assert [j["job_id"] for j in page["jobs"]] == listed[::-1]

	page = cli_json(engine, "list", "--limit", "2", "--offset", "1")
	assert page["total"] == 5
	assert (page["limit"], page["offset"]) == (2, 1)
	assert [j["job_id"] for j in page["jobs"]] == [listed[3], listed[2]]


def test_list_filters_by_org_status_and_type(engine, listed):
	acme = cli_json(engine, "list", "--org", "Acme")
	assert [j["job_id"] for j in acme["jobs"]] == [listed[4], listed[2], listed[1], listed[0]]
	assert {j["organization"] for j in acme["jobs"]} == {"Acme"}

	completed = cli_json(engine, "list", "--status", "Completed")
	assert [j["job_id"] for j in completed["jobs"]] == [listed[1]]
	assert completed["total"] == 1

	flaky = cli_json(engine, "list", "--type", "t_flaky")
	assert [j["job_id"] for j in flaky["jobs"]] == [listed[2]]

	acme_queued_echo = cli_json(engine, "list", "--org", "Acme", "--status", "Queued", "--type", "t_echo")
	assert [j["job_id"] for j in acme_queued_echo["jobs"]] == [listed[4], listed[0]]


def test_list_since_until_accept_the_timestamps_the_cli_prints(engine, listed):
	created = [engine.status(job_id)["created_at"] for job_id in listed]

	# since is inclusive, until exclusive; the values are exactly what `status --json` prints
	window = cli_json(engine, "list", "--since", created[1], "--until", created[3])
	assert [j["job_id"] for j in window["jobs"]] == [listed[2], listed[1]]
	assert window["total"] == 2

	# another offset names the same instant: 10:00 UTC is 12:00 at +02:00
	shifted = cli_json(engine, "list", "--since", "2024-05-01T12:00:00+02:00")
	assert [j["job_id"] for j in shifted["jobs"]] == [listed[4], listed[3], listed[2]]

	zulu = cli_json(engine, "list", "--until", "2024-05-01T09:00:00Z")
	assert [j["job_id"] for j in zulu["jobs"]] == [listed[0]]

	day = cli_json(engine, "list", "--since", "2024-05-01", "--until", "2024-05-02")
	assert day["total"] == 5


def test_list_rejects_bad_dates_and_limits(engine, listed):
	result = run_cli(engine, "list", "--since", "yesterday")
	assert result.returncode == EXIT_BAD_INPUT
	assert "--since" in result.stderr

	error = cli_json(engine, "list", "--limit", "500", expect=EXIT_BAD_INPUT)
	assert error["field"] == "limit"
	error = cli_json(engine, "list", "--status", "Sleeping", expect=EXIT_BAD_INPUT)
	assert error["field"] == "status"


# -- history, worker, scheduler -----------------------------------------------------------------


def test_worker_burst_runs_submitted_jobs_and_history_shows_them(engine):
	first = cli_json(engine, "submit", "t_echo", "--org", "Acme", "--params", '{"value": "a.pdf"}')
	second = cli_json(engine, "submit", "t_echo", "--org", "Globex", "--params", '{"value": "b.pdf"}')

	report = cli_json(engine, "worker", "--burst")

	assert report == {"workers": 1, "failed": 0}
	for job, value in ((first, "a.pdf"), (second, "b.pdf")):
		done = cli_json(engine, "status", job["job_id"])
		assert done["status"] == "Completed"
		assert done["output_reference"] == f"/files/{value}"
		assert done["progress"] == 100
		assert parse_iso(done["started_at"]) <= parse_iso(done["completed_at"])
	history = cli_json(engine, "history", first["job_id"])
	assert history["job_id"] == first["job_id"]
	assert history["chain_valid"] is True
	assert history["chain_problem"] is None
	entries = history["entries"]
	assert [e["sequence"] for e in entries] == [1, 2, 3]
	assert [(e["from_status"], e["to_status"]) for e in entries] == [
		(None, "Queued"),
		("Queued", "Running"),
		("Running", "Completed"),
	]
	assert [parse_iso(e["timestamp"]) for e in entries] == sorted(parse_iso(e["timestamp"]) for e in entries)
	assert entries[0]["actor"] == "Administrator"


def test_scheduler_once_prints_a_report_and_requeues_due_retries(engine):
	job = engine.submit("t_flaky", "Acme", {"failures": 1})
	assert run_in_process(engine, job["job_id"]) == "Failed"  # base_delay 0: the retry is due now

	report = cli_json(engine, "scheduler", "--once")

	assert set(report) == {
		"rescue_orphans",
		"stop_canceled",
		"run_schedules",
		"queue_scheduled",
		"requeue_due_retries",
		"release_pending",
		"redispatch_lost",
		"purge_daily",
	}
	assert report["requeue_due_retries"] == 1
	assert report["rescue_orphans"] == 0
	assert isinstance(report["purge_daily"], int)
	requeued = engine.status(job["job_id"])
	assert requeued["status"] == "Queued"
	assert requeued["retry_count"] == 1


# -- metrics, purge, watch ----------------------------------------------------------------------


def test_metrics_json_and_prometheus(engine):
	for value in ("m1", "m2"):
		run_in_process(engine, engine.submit("t_echo", "Acme", {"value": value})["job_id"])
	engine.submit("t_echo", "Acme", {"value": "waiting"}, priority="High")
	engine.submit("t_echo", "Globex", {"value": "other"})

	data = cli_json(engine, "metrics", "--org", "Acme")
	assert data["organization"] == "Acme"
	assert data["job_count_by_status"]["Completed"] == 2
	assert data["job_count_by_status"]["Queued"] == 1
	assert data["job_count_by_status"]["Dead Letter"] == 0
	assert data["queue_depth_by_priority"] == {"Critical": 0, "High": 1, "Normal": 0, "Low": 0}
	assert data["processing_time"]["by_job_type"]["t_echo"]["count"] == 2
	assert data["failure_rate_by_type"] == {"t_echo": 0.0}

	result = run_cli(engine, "metrics", "--prometheus", as_json=False)
	assert result.returncode == 0, result.stderr
	lines = result.stdout.splitlines()
	assert 'dartwing_jobs{status="Completed"} 2' in lines
	assert 'dartwing_jobs{status="Queued"} 2' in lines
	assert 'dartwing_queue_depth{priority="Normal"} 1' in lines
	assert "# TYPE dartwing_jobs gauge" in lines
	assert any(line.startswith('dartwing_processing_seconds_p95{job_type="t_echo"} ') for line in lines)


def test_purge_older_than_zero_removes_finished_jobs_only(engine):
	done = engine.submit("t_echo", "Acme", {"value": "old"})
	run_in_process(engine, done["job_id"])
	canceled = engine.cancel(engine.submit("t_echo", "Acme", {"value": "dropped"})["job_id"])
	waiting = engine.submit("t_echo", "Acme", {"value": "waiting"})

	report = cli_json(engine, "purge", "--older-than", "0")

	assert report == {"purged": 2}
	cli_json(engine, "status", done["job_id"], expect=EXIT_NOT_FOUND)
	cli_json(engine, "status", canceled["job_id"], expect=EXIT_NOT_FOUND)
	assert engine.status(waiting["job_id"])["status"] == "Queued"
	assert engine.store.count(LOG, [("background_job", "in", [done["job_id"], canceled["job_id"]])]) == 0
	assert cli_json(engine, "purge", "--older-than", "0") == {"purged": 0}


def test_purge_rejects_negative_days(engine):
	error = cli_json(engine, "purge", "--older-than", "-1", expect=EXIT_BAD_INPUT)
	assert error["field"] == "older_than"


def test_watch_of_a_finished_job_returns_at_once_with_its_final_state(engine):
	job = engine.submit("t_echo", "Acme", {"value": "watched", "progress_steps": 2})
	run_in_process(engine, job["job_id"])

	started = time.monotonic()
	document = cli_json(engine, "watch", job["job_id"], "--timeout", "30")
	elapsed = time.monotonic() - started

	assert elapsed < 10
	[final] = document["jobs"]
	assert final["job_id"] == job["job_id"]
	assert final["status"] == "Completed"
	assert final["progress"] == 100
	assert final["output_reference"] == "/files/watched"


# -- human output -------------------------------------------------------------------------------


def test_human_status_and_list_output_is_readable(engine):
	job = engine.submit("t_echo", "Acme", {"value": "human"})

	status = run_cli(engine, "status", job["job_id"], as_json=False)
	listing = run_cli(engine, "list", "--org", "Acme", as_json=False)

	assert status.returncode == 0, status.stderr
	assert job["job_id"] in status.stdout
	assert "Queued" in status.stdout
	assert "t_echo" in status.stdout
	assert listing.returncode == 0, listing.stderr
	assert job["job_id"] in listing.stdout
	assert "1 of 1" in listing.stdout
	for output in (status.stdout, listing.stdout):
		with pytest.raises(ValueError):
			json.loads(output)


def test_failing_command_prints_its_message_on_stderr(engine):
	result = run_cli(engine, "status", "doesnotexist", as_json=False)

	assert result.returncode == EXIT_NOT_FOUND
	assert result.stdout == ""
	assert "error:" in result.stderr
	assert "job 'doesnotexist' not found" in result.stderr

	result = run_cli(engine, "submit", "t_echo", "--org", "Acme", "--priority", "Urgent", as_json=False)
	assert result.returncode == EXIT_BAD_INPUT
	assert result.stdout == ""
	assert "priority:" in result.stderr


def test_json_error_document_is_on_stdout_and_message_on_stderr(engine):
	job = engine.submit("t_echo", "Acme", {"value": "x"})

	result = run_cli(engine, "retry", job["job_id"])

	assert result.returncode == EXIT_NOT_ALLOWED
	document = json.loads(result.stdout)
	assert document["error"] == "InvalidState"
	assert "only Failed, Timed Out, Dead Letter jobs can be retried" in " ".join(result.stderr.split())


def test_suspended_org_jobs_wait_and_run_after_resume(engine):
	job = cli_json(engine, "submit", "t_echo", "--org", "Globex", "--params", '{"value": "later"}')
	admin.set_organization_status(engine, "Globex", "Suspended")
	cli_json(engine, "worker", "--burst")
	assert engine.status(job["job_id"])["status"] == "Pending"

	cli_json(engine, "org", "resume", "Globex")
	cli_json(engine, "scheduler", "--once")
	cli_json(engine, "worker", "--burst")

	assert engine.status(job["job_id"])["status"] == "Completed"


def test_watch_exits_1_when_its_timeout_passes_before_the_job_ends(engine):
	# Given a queued job and no worker to run it
	job = engine.submit("t_echo", "Acme", {"value": "never-run"})

	# When watching it with a short timeout
	document = cli_json(engine, "watch", job["job_id"], "--timeout", "1", expect=1)

	# Then the watch gives up, says so by its exit code, and reports the job as it stands
	assert [j["status"] for j in document["jobs"]] == ["Queued"]


# -- pause, resume, items ---------------------------------------------------------------------------


def test_pause_and_resume_a_queued_job(engine):
	job_id = engine.submit("t_echo", "Acme", {"value": "later"})["job_id"]

	paused = cli_json(engine, "pause", job_id, "--user", "ops@example.com")
	again = cli_json(engine, "pause", job_id, expect=EXIT_NOT_ALLOWED)
	resumed = cli_json(engine, "resume", job_id)

	assert paused["status"] == "Paused"
	assert again["error"] == "InvalidState"
	assert resumed["status"] == "Queued"
	assert cli_json(engine, "resume", job_id, expect=EXIT_NOT_ALLOWED)["error"] == "InvalidState"
	assert [e["to_status"] for e in engine.history(job_id)["entries"]] == ["Queued", "Paused", "Queued"]
	assert cli_json(engine, "pause", "0123456789abcdef", expect=EXIT_NOT_FOUND)["error"] == "NotFound"


def test_items_lists_a_jobs_items_and_retry_runs_its_failed_ones(engine, tmp_path):
	job_id = engine.submit("t_items", "Acme", {"marker": str(tmp_path / "calls"), "fail": [3, 7]})["job_id"]
	assert run_in_process(engine, job_id) == "Failed"

	failed = cli_json(engine, "items", job_id, "--status", "Failed")
	human = run_cli(engine, "items", job_id, "--limit", "5", as_json=False)
	bad = cli_json(engine, "items", job_id, "--status", "Done", expect=EXIT_BAD_INPUT)

	assert [(i["key"], i["error_type"]) for i in failed["items"]] == [
		("r3", "ValueError"),
		("r7", "ValueError"),
	]
	assert failed["total"] == 2
	assert (
		human.returncode == 0
		and "ValueError: row 3 has no amount" in human.stdout
		and "5 of 10" in human.stdout
	)
	assert bad["field"] == "status"
	assert engine.status(job_id)["items"] == {"total": 10, "done": 8, "failed": 2, "skipped": 0}

	permanent = engine.submit("t_permanent", "Acme")["job_id"]
	run_in_process(engine, permanent)
	refused = cli_json(engine, "retry", permanent, "--failed-items", expect=EXIT_NOT_ALLOWED)
	assert "has no failed items" in refused["message"]
	retried = cli_json(engine, "retry", job_id, "--failed-items")
	assert retried["status"] == "Queued"
	assert engine.history(job_id)["entries"][-1]["message"] == "Retried by Administrator: its 2 failed items"


def test_job_type_pause_and_resume(engine):
	paused = cli_json(engine, "job-type", "pause", "t_echo")
	again = cli_json(engine, "job-type", "pause", "t_echo", expect=EXIT_NOT_ALLOWED)
	resumed = cli_json(engine, "job-type", "resume", "t_echo")

	assert paused == {"job_type": "t_echo", "is_paused": True, "resumed_jobs": 0}
	assert again["error"] == "InvalidState"
	assert resumed["is_paused"] is False
	assert cli_json(engine, "job-type", "pause", "nope", expect=EXIT_NOT_FOUND)["error"] == "NotFound"
