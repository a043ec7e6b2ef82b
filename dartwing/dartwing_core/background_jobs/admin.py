"""Set-up actions for the standalone backend: job types from declared handlers, organizations.
(On a Frappe site these rows are documents edited in the desk.)"""

from typing import TYPE_CHECKING

from .errors import AlreadyExists, NotFound, UniqueViolation, ValidationError

if TYPE_CHECKING:
	from .engine import Engine

ORG = "Organization"
JOB_TYPE = "Job Type"


def sync_job_types(engine: "Engine") -> list[str]:
	"""Create a Job Type row for each declared handler that has none; existing rows are left
	alone so an administrator's later edits win. Returns the names created."""
	created = []
	for spec in engine.handlers.specs.values():
		if engine.store.get(JOB_TYPE, spec.type_name) is None:
			try:
				engine.store.insert(JOB_TYPE, spec.as_job_type_row())
				created.append(spec.type_name)
			except UniqueViolation:
				pass  # another process created it first
	return created


def add_organization(
	engine: "Engine", name: str, max_queued_jobs: int = 1000, max_in_flight_jobs: int = 0
) -> dict:
	if not isinstance(name, str) or not name.strip():
		raise ValidationError("name", "is required")
	for field, value in (("max_queued_jobs", max_queued_jobs), ("max_in_flight_jobs", max_in_flight_jobs)):
		if not isinstance(value, int) or value < 0:
			raise ValidationError(field, "must be zero (no limit) or a positive integer")
	row = {
		"name": name,
		"organization_name": name,
		"status": "Active",
		"max_queued_jobs": max_queued_jobs,
		"max_in_flight_jobs": max_in_flight_jobs,
	}
	try:
		engine.store.insert(ORG, row)
	except UniqueViolation:
		raise AlreadyExists(f"organization {name!r} already exists") from None
	return engine.store.get(ORG, name)


def set_organization_status(engine: "Engine", name: str, status: str) -> dict:
	if status not in ("Active", "Suspended"):
		raise ValidationError("status", "must be Active or Suspended")
	if not engine.store.update(ORG, name, {"status": status, "modified": engine.now()}):
		raise NotFound(f"organization {name!r} not found")
	return engine.store.get(ORG, name)
