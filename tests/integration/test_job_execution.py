"""Jobs run by real RQ worker processes: success, progress, results, retries, dead letter, timeouts."""

import pytest
from rq.utils import get_version

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


def test_a_worker_takes_the_highest_priority_first(engine):
	"""One queue per priority: a worker takes Critical, then High, Normal and Low jobs, each
	priority in the order submitted, whatever order they were submitted in."""
	submitted = [
		engine.submit("t_echo", "Acme", {"value": f"{priority}-{n}"}, priority=priority)["job_id"]
		for n in range(2)
		for priority in ("Low", "Normal", "High", "Critical")
	]

	run_worker_burst(engine)

	jobs = [engine.status(job_id) for job_id in submitted]
	assert {job["status"] for job in jobs} == {"Completed"}
	started = [job["parameters"]["value"] for job in sorted(jobs, key=lambda job: job["started_at"])]
	assert started == [
		"Critical-0",
		"Critical-1",
		"High-0",
		"High-1",
		"Normal-0",
		"Normal-1",
		"Low-0",
		"Low-1",
	]


def _skip_without_lmpop(redis) -> None:
	if get_version(redis) < (7, 0, 0):
		pytest.skip(f"Redis {get_version(redis)} has no LMPOP: workers use RQ's LPOP per queue")


def test_a_burst_worker_takes_a_low_job_in_one_round_trip(engine, monkeypatch):
	"""RQ's non-blocking dequeue sends one LPOP per queue until one answers; on Redis 7 the
	engine's queues send one LMPOP for all four, which keeps the priority order."""
	redis = engine.queue.redis
	_skip_without_lmpop(redis)
	low = engine.submit("t_echo", "Acme", {"value": "low"}, priority="Low")["job_id"]
	high = engine.submit("t_echo", "Acme", {"value": "high"}, priority="High")["job_id"]
	queues = engine.queue.in_priority_order()
	sent = []
	execute_command = redis.execute_command

	def counted(*args, **options):
		sent.append(args[0])
		return execute_command(*args, **options)

	monkeypatch.setattr(redis, "execute_command", counted)

	taken = [type(queues[0]).dequeue_any(queues, None, connection=redis) for _ in range(3)]
	monkeypatch.undo()
	for message, _queue in filter(None, taken):
		message.delete()  # popped, never run: nothing else would remove them

	assert [dequeued[0].args[0] if dequeued else None for dequeued in taken] == [high, low, None]
	assert [command for command in sent if "POP" in command.upper()] == ["LMPOP"] * 3


def test_the_worker_dequeues_with_one_round_trip_per_job(engine):
	"""The worker process uses the engine's queue class: Redis counts its LMPOPs (a server-wide
	count, which other clients can only raise)."""
	redis = engine.queue.redis
	_skip_without_lmpop(redis)
	for n in range(3):
		engine.submit("t_echo", "Acme", {"value": f"low-{n}"}, priority="Low")

	def calls(command: str) -> int:
		return redis.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0)

	before = calls("lmpop")
	run_worker_burst(engine)

	assert calls("lmpop") - before >= 4  # three jobs and the empty poll that ends the burst
