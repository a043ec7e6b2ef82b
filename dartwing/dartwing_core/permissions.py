"""Tenancy: a user sees the organizations their User Permissions reach, and those organizations'
jobs (with their logs, steps and items) and job schedules; System Manager and Dartwing Admin see
all. Used by hooks.py for lists and documents."""

import frappe

from dartwing.dartwing_core.background_jobs.schedules import SCHEDULE
from dartwing.dartwing_core.background_jobs.transitions import JOB

ORGANIZATION = "Organization"
ADMIN_ROLES = ("System Manager", "Dartwing Admin")


def is_admin(user: str | None = None) -> bool:
	user = user or frappe.session.user
	return user == "Administrator" or bool(set(ADMIN_ROLES) & set(frappe.get_roles(user)))


def allowed_organizations(user: str | None = None) -> list[str] | None:
	"""The organizations `user` may reach through User Permissions; None means all (admins)."""
	user = user or frappe.session.user
	if is_admin(user):
		return None
	from frappe.permissions import get_user_permissions

	return sorted({p["doc"] for p in get_user_permissions(user).get("Organization", [])})


def can_access_organization(organization: str, user: str | None = None) -> bool:
	allowed = allowed_organizations(user)
	return allowed is None or organization in allowed


# The field naming the job a row of a job's own doctype belongs to (a child table's `parent`).
JOB_FIELD = {"Background Job Step": "parent"}


def organization_of(doctype: str, row) -> str | None:
	"""The organization a tenant document belongs to (a log or step row: its job's)."""
	if doctype == ORGANIZATION:
		return row.get("name")
	if doctype in (JOB, SCHEDULE):
		return row.get("organization")
	return frappe.db.get_value(JOB, row.get(JOB_FIELD.get(doctype, "background_job")), "organization")


def may_reach(doctype: str, row, user: str | None = None) -> bool:
	"""The one tenancy rule for a document: its organization is one the user may access (a
	document of no organization, such as a log row of a purged job: admins only)."""
	organization = organization_of(doctype, row)
	return can_access_organization(organization, user) if organization else is_admin(user)


def organizations_sql(user: str | None) -> str | None:
	"""The user's organizations as an SQL list (`NULL` for none); None for admins (all)."""
	allowed = allowed_organizations(user)
	if allowed is None:
		return None
	return ", ".join(frappe.db.escape(org, percent=False) for org in allowed) or "NULL"


def _in_organizations(column: str, user: str | None) -> str:
	organizations = organizations_sql(user)
	return "" if organizations is None else f"{column} in ({organizations})"


def organization_query(user: str | None = None) -> str:
	return _in_organizations("`tabOrganization`.`name`", user)


def has_organization_permission(doc, ptype: str | None = None, user: str | None = None) -> bool:
	return doc.is_new() or may_reach(ORGANIZATION, doc, user)


def background_job_query(user: str | None = None) -> str:
	return _in_organizations("`tabBackground Job`.`organization`", user)


def job_execution_log_query(user: str | None = None) -> str:
	return _of_reachable_jobs("`tabJob Execution Log`.`background_job`", user)


def background_job_item_query(user: str | None = None) -> str:
	return _of_reachable_jobs("`tabBackground Job Item`.`background_job`", user)


def background_job_step_query(user: str | None = None) -> str:
	"""Steps are read with their job's form; a list of them (Frappe lists a child table for a
	reader of its parent doctype) holds only those of jobs the user may reach."""
	return _of_reachable_jobs("`tabBackground Job Step`.`parent`", user)


def _of_reachable_jobs(column: str, user: str | None) -> str:
	condition = _in_organizations("`tabBackground Job`.`organization`", user)
	if not condition:
		return ""
	return f"{column} in (select `tabBackground Job`.`name` from `tabBackground Job` where {condition})"


def has_background_job_permission(doc, ptype: str | None = None, user: str | None = None) -> bool:
	return may_reach(JOB, doc, user)


def has_job_execution_log_permission(doc, ptype: str | None = None, user: str | None = None) -> bool:
	return may_reach("Job Execution Log", doc, user)


def has_background_job_step_permission(doc, ptype: str | None = None, user: str | None = None) -> bool:
	return may_reach("Background Job Step", doc, user)


def has_background_job_item_permission(doc, ptype: str | None = None, user: str | None = None) -> bool:
	return may_reach("Background Job Item", doc, user)


def job_schedule_query(user: str | None = None) -> str:
	return _in_organizations("`tabJob Schedule`.`organization`", user)


def has_job_schedule_permission(doc, ptype: str | None = None, user: str | None = None) -> bool:
	"""Members of its organization see a schedule; only the user its jobs run as (owner_user) and
	the admins change or delete it: an edit decides what runs under the owner's name."""
	if doc.is_new():
		return True  # the controller checks the organization (the engine's rules) on insert
	if not may_reach(SCHEDULE, doc, user):
		return False
	if ptype in ("write", "delete", "submit", "cancel", "amend"):
		return doc.get("owner_user") == (user or frappe.session.user) or is_admin(user)
	return True
