"""Whitelisted Job Schedule API: /api/method/dartwing.dartwing_core.api.schedules.<method>.

Organization-scoped as the job API: a member sees the schedules of their organizations; only the
user a schedule runs as (its creator) and the admins change, run or delete it. Engine errors
become the API's statuses (400 naming the field, 403, 404)."""

import frappe

from dartwing.dartwing_core.api.jobs import _engine_errors
from dartwing.dartwing_core.background_jobs import schedules
from dartwing.dartwing_core.background_jobs.backends.frappe_backend import get_engine
from dartwing.dartwing_core.background_jobs.engine import check_name
from dartwing.dartwing_core.background_jobs.errors import NotFound, PermissionDenied
from dartwing.dartwing_core.background_jobs.serialize import schedule_to_api
from dartwing.dartwing_core.permissions import (
	SCHEDULE,
	allowed_organizations,
	can_access_organization,
	is_admin,
	may_reach,
)


def _readable(schedule_id) -> dict:
	"""The row; 404 alike when absent and when of an organization the user may not reach."""
	check_name("schedule_id", schedule_id)
	if not frappe.has_permission(SCHEDULE, "read"):
		raise PermissionDenied("you may not use job schedules")
	row = get_engine().store.get(SCHEDULE, schedule_id)
	if row is None or not may_reach(SCHEDULE, row):
		raise NotFound(f"job schedule {schedule_id!r} not found")
	return row


def _changeable(schedule_id) -> dict:
	row = _readable(schedule_id)
	if row["owner_user"] != frappe.session.user and not is_admin():
		raise PermissionDenied("only the schedule's owner or an admin may change it")
	return row


def _api(row: dict) -> dict:
	engine = get_engine()
	return schedule_to_api(row, engine.tz, schedules.upcoming(engine, row))


@frappe.whitelist(methods=["POST"])
@_engine_errors
def add_schedule(
	job_type: str | None = None,
	organization: str | None = None,
	parameters: dict | str | None = None,
	cron: str | None = None,
	interval_seconds: int | str | None = None,
	time_zone: str | None = None,
	enabled: int | str = 1,
	overlap_policy: str | None = None,
	misfire_policy: str | None = None,
) -> dict:
	"""A schedule whose jobs run as the session user: the engine's checks, then one insert."""
	if not frappe.has_permission(SCHEDULE, "create"):
		raise PermissionDenied("you may not create job schedules")
	check_name("organization", organization or None, required=False)
	if isinstance(organization, str) and organization and not can_access_organization(organization):
		raise PermissionDenied(f"no access to organization {organization!r}")
	# schedules.prepare checks every value and gives the defaults (UTC, Skip, Run Once).
	values = {
		"job_type": job_type,
		"organization": organization,
		"parameters": parameters,
		"cron": cron,
		"interval_seconds": interval_seconds,
		"time_zone": time_zone,
		"enabled": enabled,
		"overlap_policy": overlap_policy,
		"misfire_policy": misfire_policy,
	}
	row = schedules.add(get_engine(), values, user=frappe.session.user, roles=set(frappe.get_roles()))
	return _api(row)


@frappe.whitelist()
@_engine_errors
def list_schedules(organization: str | None = None) -> dict:
	if not frappe.has_permission(SCHEDULE, "read"):
		raise PermissionDenied("you may not use job schedules")
	rows = schedules.list_schedules(get_engine(), organization or None, allowed_organizations())
	return {"schedules": [schedule_to_api(r, get_engine().tz) for r in rows]}


@frappe.whitelist()
@_engine_errors
def get_schedule(schedule_id: str | None = None) -> dict:
	"""The schedule, its next five run times and its latest jobs (the desk form shows them)."""
	row = _readable(schedule_id)
	engine = get_engine()
	document = _api(row)
	document["jobs"] = [engine.to_api(job) for job in schedules.jobs_of(engine, row["name"])]
	return document


@frappe.whitelist(methods=["POST"])
@_engine_errors
def pause_schedule(schedule_id: str | None = None) -> dict:
	_changeable(schedule_id)
	return _api(schedules.set_enabled(get_engine(), schedule_id, False, user=frappe.session.user))


@frappe.whitelist(methods=["POST"])
@_engine_errors
def resume_schedule(schedule_id: str | None = None) -> dict:
	_changeable(schedule_id)
	return _api(schedules.set_enabled(get_engine(), schedule_id, True, user=frappe.session.user))


@frappe.whitelist(methods=["POST"])
@_engine_errors
def run_schedule_now(schedule_id: str | None = None) -> dict:
	"""One job of the schedule now, run as the schedule's owner, logged as asked by the caller."""
	_changeable(schedule_id)
	return schedules.run_now(get_engine(), schedule_id, user=frappe.session.user)


@frappe.whitelist(methods=["POST"])
@_engine_errors
def delete_schedule(schedule_id: str | None = None) -> dict:
	"""The schedule goes; its jobs stay with their history."""
	_changeable(schedule_id)
	schedules.delete(get_engine(), schedule_id)
	return {"deleted": schedule_id}
