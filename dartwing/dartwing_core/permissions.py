"""Tenancy: a user sees the organizations their User Permissions reach, and those organizations'
jobs and job logs; System Manager and Dartwing Admin see all. Used by hooks.py for lists and
documents."""

import frappe

from dartwing.dartwing_core.background_jobs.backends.frappe_backend import (
	allowed_organizations,
	can_access_organization,
)


def _in_organizations(column: str, user: str | None) -> str:
	allowed = allowed_organizations(user)
	if allowed is None:
		return ""
	if not allowed:
		return "1=0"
	return f"{column} in ({', '.join(frappe.db.escape(org, percent=False) for org in allowed)})"


def organization_query(user: str | None = None) -> str:
	return _in_organizations("`tabOrganization`.`name`", user)


def has_organization_permission(doc, ptype: str | None = None, user: str | None = None) -> bool:
	return doc.is_new() or can_access_organization(doc.name, user)


def background_job_query(user: str | None = None) -> str:
	return _in_organizations("`tabBackground Job`.`organization`", user)


def job_execution_log_query(user: str | None = None) -> str:
	condition = _in_organizations("`tabBackground Job`.`organization`", user)
	if not condition:
		return ""
	return (
		"`tabJob Execution Log`.`background_job` in "
		f"(select `tabBackground Job`.`name` from `tabBackground Job` where {condition})"
	)


def has_background_job_permission(doc, ptype: str | None = None, user: str | None = None) -> bool:
	return can_access_organization(doc.organization, user)


def has_job_execution_log_permission(doc, ptype: str | None = None, user: str | None = None) -> bool:
	organization = frappe.db.get_value("Background Job", doc.background_job, "organization")
	return can_access_organization(organization, user)
