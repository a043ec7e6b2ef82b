"""Engine errors as Frappe exceptions carrying the HTTP status the API promises: 400 bad input,
403 not allowed, 404 unknown job, 409 duplicate or wrong state, 429 queue full. Shared by the
whitelisted API and the Background Job controller (desk and REST inserts)."""

import frappe
from frappe import _

from dartwing.dartwing_core.background_jobs.errors import DartwingError, DuplicateJob, RateLimited


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
	existing job and its status, a rate limit's response carries Retry-After. An error of no
	status the API promises is a server error, and is raised as it is."""
	frappe_exc = _BY_STATUS.get(exc.http_status)
	if frappe_exc is None:
		raise exc
	if isinstance(exc, DuplicateJob):
		frappe.local.response["existing_job"] = exc.existing_job
		frappe.local.response["existing_status"] = exc.existing_status
	if isinstance(exc, RateLimited):
		frappe.local.dartwing_retry_after = exc.retry_after
	frappe.throw(str(exc), exc=frappe_exc, title=_("Job"))


def add_retry_after(response=None, request=None) -> None:
	"""after_request hook: the Retry-After header of a rate-limited submit."""
	retry_after = getattr(frappe.local, "dartwing_retry_after", None)
	if retry_after and response is not None:
		response.headers["Retry-After"] = str(retry_after)
