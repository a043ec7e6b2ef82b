"""metrics.collect on known data, and its Prometheus text."""

import math
import random
import re
from datetime import timedelta

import pytest

from dartwing.dartwing_core.background_jobs import admin, metrics
from dartwing.dartwing_core.background_jobs.dead_letter import send as dead_letter
from dartwing.dartwing_core.background_jobs.executor import execute
from dartwing.dartwing_core.background_jobs.transitions import JOB

STATUSES = (
	"Scheduled",
	"Pending",
	"Queued",
	"Running",
	"Completed",
	"Failed",
	"Timed Out",
	"Canceled",
	"Dead Letter",
	"Paused",
)
# name{label="value",...} number, where a value escapes only backslash, double quote and newline
SAMPLE_LINE = re.compile(
	r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_]\w*="([^"\\\n]|\\["\\n])*",?)+\})? -?[0-9.e+-]+$'
)


def completed(engine, job_type: str, params: dict, seconds: float, ended_ago=timedelta(minutes=1)) -> str:
	"""A job run to completion by the executor, then given a known duration and end time."""
	job_id = engine.submit(job_type, "Acme", params)["job_id"]
	assert execute(engine, job_id, engine.get_job(job_id)["queue_job_id"]) == "Completed"
	ended = engine.now() - ended_ago
	engine.store.update(
		JOB,
		job_id,
		{"started_at": ended - timedelta(seconds=seconds), "completed_at": ended, "modified": ended},
	)
	return job_id


def dead_lettered(engine, job_type: str, params: dict, ended_ago=None) -> str:
	job_id = engine.submit(job_type, "Acme", params)["job_id"]
	assert dead_letter(
		engine, engine.get_job(job_id), error_type="Permanent", error_message="x", actor="test"
	)
	if ended_ago:
		ended = engine.now() - ended_ago
		engine.store.update(JOB, job_id, {"completed_at": ended, "modified": ended})
	return job_id


def test_empty_engine_reports_every_status_and_priority_as_zero(engine):
	data = metrics.collect(engine)

	assert data["job_count_by_status"] == dict.fromkeys(STATUSES, 0)
	assert list(data["job_count_by_status"]) == list(STATUSES)
	assert data["queue_depth_by_priority"] == {"Critical": 0, "High": 0, "Normal": 0, "Low": 0}
	assert data["processing_time"] == {
		"count": 0,
		"average_seconds": None,
		"p95_seconds": None,
		"by_job_type": {},
	}
	assert data["failure_rate_by_type"] == {}


def test_job_count_by_status_counts_each_status(engine):
	for value in ("q1", "q2", "q3"):
		engine.submit("t_echo", "Acme", {"value": value})
	completed(engine, "t_echo", {"value": "c1"}, 1)
	parent = engine.submit("t_echo", "Acme", {"value": "parent"})
	engine.submit("t_echo", "Acme", {"value": "child"}, depends_on=parent["job_id"])
	engine.cancel(engine.submit("t_echo", "Acme", {"value": "x1"})["job_id"])
	failed = engine.submit("t_flaky", "Acme", {"failures": 5})["job_id"]
	assert execute(engine, failed, engine.get_job(failed)["queue_job_id"]) == "Failed"
	engine.submit("t_echo", "Acme", {"value": "later"}, delay="1h")

	counts = metrics.collect(engine)["job_count_by_status"]

	assert counts == {
		"Scheduled": 1,
		"Pending": 1,
		"Queued": 4,
		"Running": 0,
		"Completed": 1,
		"Failed": 1,
		"Timed Out": 0,
		"Canceled": 1,
		"Dead Letter": 0,
		"Paused": 0,
	}


def test_queue_depth_counts_only_queued_jobs_per_priority(engine):
	for value, priority in (("h1", "High"), ("h2", "High"), ("l1", "Low"), ("n1", "Normal")):
		engine.submit("t_echo", "Acme", {"value": value}, priority=priority)
	# Not queued: a Pending Critical child, a Completed Critical job, a Canceled High one.
	parent = engine.submit("t_echo", "Acme", {"value": "parent"}, priority="Low")
	engine.submit("t_echo", "Acme", {"value": "child"}, priority="Critical", depends_on=parent["job_id"])
	done = engine.submit("t_echo", "Acme", {"value": "done"}, priority="Critical")["job_id"]
	execute(engine, done, engine.get_job(done)["queue_job_id"])
	engine.cancel(engine.submit("t_echo", "Acme", {"value": "gone"}, priority="High")["job_id"])

	depth = metrics.collect(engine)["queue_depth_by_priority"]

	assert depth == {"Critical": 0, "High": 2, "Normal": 1, "Low": 2}


def test_processing_time_average_and_p95_by_nearest_rank(engine):
	# Given 20 completed jobs that took 1, 2, ..., 20 seconds (inserted out of order)
	for seconds in (7, 3, 20, 1, 15, 9, 12, 5, 18, 2, 11, 14, 6, 19, 4, 16, 8, 13, 10, 17):
		completed(engine, "t_echo", {"value": f"v{seconds}"}, seconds)

	timing = metrics.collect(engine)["processing_time"]

	# the average is 10.5; p95 is the 19th of 20 sorted values (ceil(0.95 * 20) = 19)
	assert timing["count"] == 20
	assert timing["average_seconds"] == pytest.approx(10.5)
	assert timing["p95_seconds"] == pytest.approx(19)
	assert timing["by_job_type"]["t_echo"] == {
		"count": 20,
		"average_seconds": pytest.approx(10.5),
		"p95_seconds": pytest.approx(19),
	}


def test_processing_time_per_job_type(engine):
	for seconds in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10):
		completed(engine, "t_echo", {"value": f"v{seconds}"}, seconds)
	# t_flaky has no deduplication window: the same parameters again are a new job once one finished
	completed(engine, "t_flaky", {"failures": 0}, 30)
	completed(engine, "t_flaky", {"failures": 0}, 60)
	dead_lettered(engine, "t_permanent", {})  # no duration: dead letters are not processing time

	timing = metrics.collect(engine)["processing_time"]

	assert timing["by_job_type"] == {
		"t_echo": {"count": 10, "average_seconds": pytest.approx(5.5), "p95_seconds": pytest.approx(10)},
		"t_flaky": {"count": 2, "average_seconds": pytest.approx(45), "p95_seconds": pytest.approx(60)},
	}
	# overall: 1..10 and 30, 60 -> 12 values, sum 145; p95 rank ceil(11.4) = 12 -> 60
	assert timing["count"] == 12
	assert timing["average_seconds"] == pytest.approx(round(145 / 12, 4))
	assert timing["p95_seconds"] == pytest.approx(60)


def test_failure_rate_is_dead_letter_over_completed_and_dead_letter(engine):
	for value in ("c1", "c2", "c3"):
		completed(engine, "t_echo", {"value": value}, 1)
	dead_lettered(engine, "t_echo", {"value": "d1"})
	for value in ("x1", "x2", "x3"):  # canceled jobs count neither way
		engine.cancel(engine.submit("t_echo", "Acme", {"value": value})["job_id"])
	for _ in range(2):
		job_id = engine.submit("t_permanent", "Acme")["job_id"]
		assert execute(engine, job_id, engine.get_job(job_id)["queue_job_id"]) == "Dead Letter"
	engine.submit("t_flaky", "Acme", {"failures": 0})  # still queued: not ended, no rate

	rates = metrics.collect(engine)["failure_rate_by_type"]

	assert rates == {"t_echo": 0.25, "t_permanent": 1.0}


def test_window_excludes_jobs_that_ended_before_it(engine):
	recent = completed(engine, "t_echo", {"value": "recent"}, 2)
	completed(engine, "t_echo", {"value": "old"}, 50, ended_ago=timedelta(hours=30))
	dead_lettered(engine, "t_echo", {"value": "old-dead"}, ended_ago=timedelta(hours=30))
	waiting = engine.submit("t_flaky", "Acme", {"failures": 5})["job_id"]
	assert execute(engine, waiting, engine.get_job(waiting)["queue_job_id"]) == "Failed"
	engine.store.update(JOB, waiting, {"modified": engine.now() - timedelta(hours=30)})

	day = metrics.collect(engine)
	three_days = metrics.collect(engine, window_hours=72)

	assert day["window_hours"] == 24
	assert day["processing_time"]["count"] == 1
	assert day["processing_time"]["average_seconds"] == pytest.approx(2)
	assert day["failure_rate_by_type"] == {"t_echo": 0.0}
	# ended jobs are counted by status when they ended in the window; unfinished ones always
	assert day["job_count_by_status"]["Completed"] == 1
	assert day["job_count_by_status"]["Dead Letter"] == 0
	assert three_days["job_count_by_status"]["Completed"] == 2
	assert three_days["job_count_by_status"]["Dead Letter"] == 1
	assert day["job_count_by_status"]["Failed"] == 1  # unfinished: counted however old
	assert three_days["processing_time"]["count"] == 2
	assert three_days["processing_time"]["average_seconds"] == pytest.approx(26)
	assert three_days["failure_rate_by_type"] == {"t_echo": pytest.approx(1 / 3, abs=1e-4)}
	assert engine.get_job(recent)["status"] == "Completed"


def test_prometheus_text_has_a_sample_per_status_priority_and_type(engine):
	completed(engine, "t_echo", {"value": "a"}, 2)
	completed(engine, "t_echo", {"value": "b"}, 4)
	engine.submit("t_echo", "Acme", {"value": "waiting"}, priority="High")

	text = metrics.to_prometheus(metrics.collect(engine))
	lines = text.splitlines()

	assert text.endswith("\n")
	for status in STATUSES:
		expected = {"Completed": 2, "Queued": 1}.get(status, 0)
		assert f'dartwing_jobs{{status="{status}"}} {expected}' in lines
	assert 'dartwing_queue_depth{priority="High"} 1' in lines
	assert 'dartwing_queue_depth{priority="Low"} 0' in lines
	assert 'dartwing_processing_seconds_average{job_type="t_echo"} 3.0' in lines
	assert 'dartwing_processing_seconds_p95{job_type="t_echo"} 4.0' in lines
	assert 'dartwing_failure_rate{job_type="t_echo"} 0.0' in lines
	for name in (
		"dartwing_jobs",
		"dartwing_queue_depth",
		"dartwing_processing_seconds_average",
		"dartwing_processing_seconds_p95",
		"dartwing_failure_rate",
	):
		assert f"# TYPE {name} gauge" in lines
		assert any(line.startswith(f"# HELP {name} ") for line in lines)
	for line in lines:
		assert line.startswith("# ") or SAMPLE_LINE.match(line), line


def test_prometheus_omits_types_without_timings(engine):
	text = metrics.to_prometheus(metrics.collect(engine))

	assert "dartwing_processing_seconds_average{" not in text
	assert "dartwing_failure_rate{" not in text
	assert "# TYPE dartwing_processing_seconds_average gauge" in text


def test_prometheus_escapes_label_values(engine):
	name = 'Acme "East"\\Branch\nTwo'
	admin.add_organization(engine, name)
	engine.submit("t_echo", name, {"value": "q"})

	text = metrics.to_prometheus(metrics.collect(engine, name))

	escaped = 'Acme \\"East\\"\\\\Branch\\nTwo'
	assert f'dartwing_jobs{{organization="{escaped}",status="Queued"}} 1' in text.splitlines()
	for line in text.splitlines():
		assert line.startswith("# ") or SAMPLE_LINE.match(line), line
	assert len(text.splitlines()) == text.count("\n")  # the raw newline never reaches the output


def python_metrics(ended: list[dict]) -> tuple[dict, dict]:
	"""What metrics.collect computed in Python before the database did: (processing time,
	failure rates) from every ended job of the window, with nearest-rank p95."""

	def timing(values: list[float]) -> dict:
		if not values:
			return {"count": 0, "average_seconds": None, "p95_seconds": None}
		values = sorted(values)
		p95 = values[max(0, math.ceil(0.95 * len(values)) - 1)]
		return {
			"count": len(values),
			"average_seconds": round(sum(values) / len(values), 4),
			"p95_seconds": round(p95, 4),
		}

	durations: dict[str, list[float]] = {}
	outcomes: dict[str, list[int]] = {}
	for row in ended:
		outcomes.setdefault(row["job_type"], [0, 0])[row["status"] == "Dead Letter"] += 1
		if row["status"] == "Completed" and row["started_at"]:
			durations.setdefault(row["job_type"], []).append(
				(row["completed_at"] - row["started_at"]).total_seconds()
			)
	processing = {
		**timing([d for values in durations.values() for d in values]),
		"by_job_type": {t: timing(v) for t, v in sorted(durations.items())},
	}
	rates = {t: round(dead / (done + dead), 4) for t, (done, dead) in sorted(outcomes.items())}
	return processing, rates


def test_metrics_computed_by_the_database_equal_the_python_reference(any_engine):
	# Given 300 jobs of three types in two organizations, with random durations down to the
	# microsecond, some dead-lettered, canceled, unfinished, never started or ended before the window
	engine, rng, now = any_engine, random.Random(12), any_engine.now()
	rows = []
	for i in range(300):
		status = rng.choice(["Completed"] * 6 + ["Dead Letter", "Canceled", "Queued"])
		ended = now - timedelta(hours=rng.choice([1, 5, 23, 30]), seconds=rng.random())
		took = timedelta(microseconds=rng.randrange(1, 90_000_000))
		row = {
			"name": f"m{i}",
			"job_type": rng.choice(["t_echo", "t_flaky", "t_permanent"]),
			"organization": rng.choice(["Acme", "Globex"]),
			"status": status,
			"job_hash": f"h{i}",
			"started_at": None if i % 29 == 0 or status == "Queued" else ended - took,
			"completed_at": None if status == "Queued" else ended,
		}
		engine.store.insert(JOB, row)
		rows.append(row)

	for organization in (None, "Acme"):
		data = metrics.collect(engine, organization)

		since = now - timedelta(hours=24)
		ended = [
			r
			for r in rows
			if r["status"] in ("Completed", "Dead Letter")
			and r["completed_at"] >= since
			and organization in (None, r["organization"])
		]
		processing, rates = python_metrics(ended)
		assert processing["count"] > 50
		assert data["processing_time"] == processing
		assert data["failure_rate_by_type"] == rates


def test_durations_are_exact_when_a_time_is_within_a_millisecond_of_the_next_second(any_engine):
	# SQLite's strftime rounds a time with a fraction to the millisecond: .9997 s read as the next
	# second made a duration a second off, at random (the reference test above, now and then)
	engine = any_engine
	base = (engine.now() - timedelta(hours=1)).replace(microsecond=0)
	for i, (job_type, started, took) in enumerate(
		(
			("t_echo", base.replace(microsecond=999_700), timedelta(microseconds=1_000_400)),
			("t_flaky", base.replace(microsecond=200), timedelta(microseconds=2_999_600)),
		)
	):
		engine.store.insert(
			JOB,
			{
				"name": f"edge{i}",
				"job_type": job_type,
				"organization": "Acme",
				"status": "Completed",
				"job_hash": f"edge{i}",
				"started_at": started,
				"completed_at": started + took,
			},
		)

	by_type = metrics.collect(engine)["processing_time"]["by_job_type"]

	assert {t: by_type[t]["average_seconds"] for t in by_type} == {"t_echo": 1.0004, "t_flaky": 2.9996}


def test_items_processed_and_failed_per_type(engine, tmp_path):
	job_id = engine.submit("t_items", "Acme", {"marker": str(tmp_path / "calls"), "fail": [1], "skip": [2]})[
		"job_id"
	]
	assert execute(engine, job_id, engine.get_job(job_id)["queue_job_id"]) == "Failed"  # unfinished
	ended = engine.submit("t_items", "Acme", {"marker": str(tmp_path / "calls2"), "skip": [3]})["job_id"]
	assert execute(engine, ended, engine.get_job(ended)["queue_job_id"]) == "Completed"  # in the window
	engine.submit("t_echo", "Acme", {"value": "no items"})

	data = metrics.collect(engine)
	lines = metrics.to_prometheus(data).splitlines()

	assert data["items_by_type"] == {"t_items": {"done": 17, "failed": 1, "skipped": 2}}
	assert 'dartwing_items_processed{job_type="t_items"} 20' in lines
	assert 'dartwing_items_failed{job_type="t_items"} 1' in lines
	assert metrics.collect(engine, "Globex")["items_by_type"] == {}
