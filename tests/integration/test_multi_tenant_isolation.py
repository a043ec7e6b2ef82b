"""Organizations never see each other's jobs: listing, metrics, deduplication and date filters."""

from datetime import datetime, timedelta

import pytest

from dartwing.dartwing_core.background_jobs import PermissionDenied, ValidationError, metrics
from dartwing.dartwing_core.background_jobs.dead_letter import send as dead_letter
from dartwing.dartwing_core.background_jobs.executor import execute
from dartwing.dartwing_core.background_jobs.transitions import JOB


def run_in_process(engine, job_id: str) -> str:
	return execute(engine, job_id, engine.get_job(job_id)["queue_job_id"])


def set_duration(engine, job_id: str, seconds: float) -> None:
	completed = engine.now() - timedelta(minutes=5)
	engine.store.update(
		JOB, job_id, {"started_at": completed - timedelta(seconds=seconds), "completed_at": completed}
	)


@pytest.fixture
def tenants(engine):
	"""Acme: 2 Completed t_echo (2 s and 4 s), 1 Dead Letter t_echo, 1 Canceled, 2 Queued (High,
	Low). Globex: 1 Completed t_echo (100 s), 2 Dead Letter t_permanent, 3 Queued Critical."""
	jobs = {"Acme": [], "Globex": []}

	def add(org, job_type, params=None, priority=None):
		job_id = engine.submit(job_type, org, params or {}, priority=priority)["job_id"]
		jobs[org].append(job_id)
		return job_id

	for value, seconds in (("a1", 2), ("a2", 4)):
		job_id = add("Acme", "t_echo", {"value": value})
		assert run_in_process(engine, job_id) == "Completed"
		set_duration(engine, job_id, seconds)
	parked = add("Acme", "t_echo", {"value": "a3"})
	dead_letter(engine, engine.get_job(parked), error_type="Permanent", error_message="bad", actor="test")
	engine.cancel(add("Acme", "t_echo", {"value": "a4"}))
	add("Acme", "t_echo", {"value": "a5"}, priority="High")
	add("Acme", "t_echo", {"value": "a6"}, priority="Low")

	job_id = add("Globex", "t_echo", {"value": "g1"})
	assert run_in_process(engine, job_id) == "Completed"
	set_duration(engine, job_id, 100)
	for _ in range(2):
		assert run_in_process(engine, add("Globex", "t_permanent")) == "Dead Letter"
	for value in ("g2", "g3", "g4"):
		add("Globex", "t_echo", {"value": value}, priority="Critical")
	return jobs


def ids(page: dict) -> set[str]:
	return {job["job_id"] for job in page["jobs"]}


def test_list_for_one_organization_shows_only_its_jobs(engine, tenants):
	acme = engine.list_jobs(organization="Acme", limit=100)
	globex = engine.list_jobs(organization="Globex", limit=100)

	assert ids(acme) == set(tenants["Acme"])
	assert acme["total"] == 6
	assert ids(globex) == set(tenants["Globex"])
	assert globex["total"] == 6
	assert engine.list_jobs(limit=100)["total"] == 12


def test_filters_combine_with_the_organization(engine, tenants):
	queued = engine.list_jobs(organization="Acme", status="Queued")
	assert {j["organization"] for j in queued["jobs"]} == {"Acme"}
	assert queued["total"] == 2

	dead = engine.list_jobs(organization="Acme", status="Dead Letter")
	assert dead["total"] == 1
	assert engine.list_jobs(organization="Acme", job_type="t_permanent")["total"] == 0


def test_allowed_organizations_bound_what_a_caller_sees(engine, tenants):
	visible = engine.list_jobs(organizations=["Acme"], limit=100)
	assert ids(visible) == set(tenants["Acme"])
	assert visible["total"] == 6

	assert ids(engine.list_jobs(organization="Acme", organizations=["Acme"], limit=100)) == set(
		tenants["Acme"]
	)
	assert engine.list_jobs(organizations=[], limit=100) == {
		"jobs": [],
		"total": 0,
		"limit": 100,
		"offset": 0,
	}
	both = engine.list_jobs(organizations=["Acme", "Globex"], limit=100)
	assert both["total"] == 12


def test_asking_for_an_organization_outside_the_allowed_ones_is_denied(engine, tenants):
	with pytest.raises(PermissionDenied):
		engine.list_jobs(organization="Globex", organizations=["Acme"])
	with pytest.raises(PermissionDenied):
		metrics.collect(engine, "Globex", organizations=["Acme"])


def test_metrics_of_one_organization_count_only_its_jobs(engine, tenants):
	acme = metrics.collect(engine, "Acme")

	assert acme["organization"] == "Acme"
	assert acme["job_count_by_status"] == {
		"Scheduled": 0,
		"Pending": 0,
		"Queued": 2,
		"Running": 0,
		"Completed": 2,
		"Failed": 0,
		"Timed Out": 0,
		"Canceled": 1,
		"Dead Letter": 1,
		"Paused": 0,
	}
	assert acme["queue_depth_by_priority"] == {"Critical": 0, "High": 1, "Normal": 0, "Low": 1}
	assert acme["processing_time"]["count"] == 2
	assert acme["processing_time"]["average_seconds"] == 3
	assert acme["processing_time"]["p95_seconds"] == 4
	assert acme["processing_time"]["by_job_type"] == {
		"t_echo": {"count": 2, "average_seconds": 3, "p95_seconds": 4}
	}
	# Acme's t_echo: 1 dead-lettered of 3 ended; Globex's t_permanent does not appear at all.
	assert acme["failure_rate_by_type"] == {"t_echo": pytest.approx(1 / 3, abs=1e-4)}


def test_metrics_of_the_other_organization_are_separate(engine, tenants):
	globex = metrics.collect(engine, "Globex")

	assert globex["job_count_by_status"]["Completed"] == 1
	assert globex["job_count_by_status"]["Dead Letter"] == 2
	assert globex["job_count_by_status"]["Canceled"] == 0
	assert globex["queue_depth_by_priority"] == {"Critical": 3, "High": 0, "Normal": 0, "Low": 0}
	assert globex["processing_time"]["average_seconds"] == 100
	assert globex["failure_rate_by_type"] == {"t_echo": 0.0, "t_permanent": 1.0}


def test_metrics_bounded_by_allowed_organizations(engine, tenants):
	scoped = metrics.collect(engine, organizations=["Acme"])
	acme = metrics.collect(engine, "Acme")

	for key in ("job_count_by_status", "queue_depth_by_priority", "processing_time", "failure_rate_by_type"):
		assert scoped[key] == acme[key], key
	everyone = metrics.collect(engine)
	assert everyone["job_count_by_status"]["Queued"] == 5
	assert everyone["processing_time"]["count"] == 3
	assert sum(metrics.collect(engine, organizations=[])["job_count_by_status"].values()) == 0


def test_same_job_in_another_organization_is_not_a_duplicate(engine):
	acme = engine.submit("t_echo", "Acme", {"value": "shared.pdf"})
	globex = engine.submit("t_echo", "Globex", {"value": "shared.pdf"})

	assert acme["job_id"] != globex["job_id"]
	assert globex["status"] == "Queued"
	assert engine.get_job(acme["job_id"])["job_hash"] != engine.get_job(globex["job_id"])["job_hash"]


def test_depends_on_cannot_cross_organizations(engine):
	parent = engine.submit("t_echo", "Acme", {"value": "parent"})

	with pytest.raises(ValidationError) as raised:
		engine.submit("t_echo", "Globex", {"value": "child"}, depends_on=parent["job_id"])
	assert raised.value.field == "depends_on"
	assert engine.list_jobs(organization="Globex")["total"] == 0


def test_list_date_range_filters(engine):
	"""since is inclusive and until exclusive, on the creation time, combined with the organization."""
	base = datetime(2024, 3, 10, 12, 0, 0)
	created = {}
	for day, org in ((0, "Acme"), (1, "Acme"), (1, "Globex"), (2, "Acme"), (3, "Acme")):
		job_id = engine.submit("t_echo", org, {"value": f"{org}-{day}"})["job_id"]
		engine.store.update(JOB, job_id, {"creation": base + timedelta(days=day)})
		created[org, day] = job_id

	middle = engine.list_jobs("Acme", since=base + timedelta(days=1), until=base + timedelta(days=3))
	assert [j["job_id"] for j in middle["jobs"]] == [created["Acme", 2], created["Acme", 1]]
	assert middle["total"] == 2

	since_only = engine.list_jobs("Acme", since=base + timedelta(days=2, seconds=-1))
	assert [j["job_id"] for j in since_only["jobs"]] == [created["Acme", 3], created["Acme", 2]]

	until_only = engine.list_jobs("Acme", until=base + timedelta(days=1))
	assert [j["job_id"] for j in until_only["jobs"]] == [created["Acme", 0]]

	globex = engine.list_jobs(organizations=["Globex"], since=base, until=base + timedelta(days=5))
	assert [j["job_id"] for j in globex["jobs"]] == [created["Globex", 1]]

	assert engine.list_jobs("Acme", since=base + timedelta(days=10))["total"] == 0
