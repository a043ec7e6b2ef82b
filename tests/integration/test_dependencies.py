"""depends_on with real workers: a child waits as Pending, starts as soon as its parent completes
(the worker that finished the parent releases it), and is canceled when the parent ends otherwise."""

from datetime import datetime

import pytest

from dartwing.dartwing_core.background_jobs import ValidationError
from tests.conftest import run_worker_burst, start_worker, stop_worker, wait_until


@pytest.fixture
def live_worker(engine, tmp_path):
	"""One real `worker` process (not burst) for the engine, stopped after the test."""
	log = open(tmp_path / "worker.log", "w")
	proc = start_worker(engine, stdout=log)
	yield proc
	stop_worker(proc)
	log.close()


def test_child_waits_for_its_parent_then_starts_when_it_completes(engine, live_worker):
	# Given a parent that works for about 2 s and a child that depends on it
	parent_id = engine.submit("t_checkpoints", "Acme", {"steps": 40, "delay": 0.05})["job_id"]
	child = engine.submit("t_echo", "Acme", {"value": "child.txt"}, depends_on=parent_id)
	child_id = child["job_id"]

	# Then the child waits while the parent runs (no scheduler runs in this test)
	assert child["status"] == "Pending"
	wait_until(lambda: engine.status(parent_id)["status"] == "Running", 30, "the parent to start")
	assert engine.status(child_id)["status"] == "Pending"

	# and the worker that completes the parent releases the child, which runs at once
	done = wait_until(
		lambda: (j := engine.status(child_id))["status"] == "Completed" and j,
		30,
		lambda: (
			f"the child to complete (parent {engine.status(parent_id)['status']}, "
			f"child {engine.status(child_id)['status']})"
		),
	)
	parent = engine.status(parent_id)
	assert parent["status"] == "Completed"
	assert done["output_reference"] == "/files/child.txt"
	gap = datetime.fromisoformat(done["started_at"]) - datetime.fromisoformat(parent["completed_at"])
	assert 0 <= gap.total_seconds() <= 1, (
		f"child started {gap.total_seconds():.3f}s after the parent completed"
	)
	entries = engine.history(child_id)["entries"]
	assert [e["to_status"] for e in entries] == ["Pending", "Queued", "Running", "Completed"]
	# released by the worker that completed the parent, and the log says so
	assert (entries[1]["actor"], entries[1]["message"]) == ("worker", f"Dependency {parent_id} completed")


def test_child_of_dead_lettered_parent_is_canceled(engine):
	parent_id = engine.submit("t_permanent", "Acme")["job_id"]
	child_id = engine.submit("t_echo", "Acme", {"value": "orphan.txt"}, depends_on=parent_id)["job_id"]
	assert engine.status(child_id)["status"] == "Pending"

	run_worker_burst(engine)

	assert engine.status(parent_id)["status"] == "Dead Letter"
	child = engine.status(child_id)
	assert child["status"] == "Canceled"
	assert child["started_at"] is None
	reason = f"parent job {parent_id} ended Dead Letter"
	assert child["error_message"] == reason
	entries = engine.history(child_id)["entries"]
	assert [e["to_status"] for e in entries] == ["Pending", "Canceled"]
	assert (entries[-1]["actor"], entries[-1]["message"]) == ("worker", f"Canceled: {reason}")
	# and a new child of that parent is refused: it could never start
	with pytest.raises(ValidationError, match="will never complete"):
		engine.submit("t_echo", "Acme", {"value": "late.txt"}, depends_on=parent_id)
