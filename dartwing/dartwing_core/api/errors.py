"""Engine errors as Frappe exceptions carrying the HTTP status the API promises: 400 bad input,
403 not allowed, 404 unknown job, 409 duplicate or wrong state, 429 queue full. Shared by the
whitelisted API and the Background Job controller (desk and REST inserts)."""

import frappe
from frappe import _

from dartwing.dartwing_core.background_jobs.errors import DartwingError, DuplicateJob


class JobInputError(frappe.ValidationError):
	http_status_code = 400


class JobConflictError(frappe.ValidationError):
	http_status_code = 409


class JobQueueFullError(frappe.ValidationError):
	http_status_code = 429


class JobNotFoundError(frappe.DoesNotExistError):
	http_status_code = 404


class JobPermissionError(frappe.PermissionError):
	http_status_code = 403


_BY_STATUS = {
	400: JobInputError,
	403: JobPermissionError,
	404: JobNotFoundError,
	409: JobConflictError,
	429: JobQueueFullError,
}


def throw(exc: DartwingError) -> None:
	"""Raise `exc` as Frappe's exception of its status; a duplicate's response body names the
	existing job and its status."""
	if isinstance(exc, DuplicateJob):
		frappe.local.response["existing_job"] = exc.existing_job
		frappe.local.response["existing_status"] = exc.existing_status
	frappe.throw(str(exc), exc=_BY_STATUS.get(exc.http_status, JobInputError), title=_("Job"))
