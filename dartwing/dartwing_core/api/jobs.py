"""Whitelisted job API: /api/method/dartwing.dartwing_core.api.jobs.<method>.

Every method checks permission first, then calls the engine; engine errors become HTTP statuses
(400 bad input, 403 not allowed, 404 unknown job, 409 duplicate or wrong state, 429 queue full or
rate limited) with the engine's message naming the field and the problem."""

import functools
from datetime import datetime

import frappe
from frappe.utils import get_datetime

from dartwing.dartwing_core.api.errors import throw
from dartwing.dartwing_core.background_jobs.backends.frappe_backend import get_engine
from dartwing.dartwing_core.background_jobs.engine import check_name
from dartwing.dartwing_core.background_jobs.errors import (
	DartwingError,
	InvalidState,
	NotFound,
	PermissionDenied,
	ValidationError,
)
from dartwing.dartwing_core.background_jobs.states import TERMINAL
from dartwing.dartwing_core.background_jobs.transitions import JOB
from dartwing.dartwing_core.permissions import (
	allowed_organizations,
	can_access_organization,
	is_admin,
	may_reach,
)


def _engine_errors(method):
	"""Engine errors become Frappe's, with the status the API promises."""

	@functools.wraps(method)
	def wrapper(*args, **kwargs):
		try:
			return method(*args, **kwargs)
		except DartwingError as exc:
			throw(exc)

	return wrapper


def _require_read() -> None:
	"""The doctype permission every read needs first: a Dartwing role (or an admin one)."""
	if not frappe.has_permission(JOB, "read"):
		raise PermissionDenied("you may not use background jobs")


def _require_admin() -> None:
	if not is_admin():
		raise PermissionDenied("only System Manager or Dartwing Admin may do this")


def _readable_job(job_id: str | None) -> dict:
	"""The job row; 404 both when there is none and when it belongs to an organization the user
	may not access, in the same words, so another organization's ids stay unconfirmed."""
	if not isinstance(job_id, str) or not job_id:
		raise ValidationError("job_id", "is required")
	check_name("job_id", job_id)  # the engine's rule for names (a JSON body may carry a lone surrogate)
	_require_read()
	job = get_engine().store.get(JOB, job_id)
	if job is None or not may_reach(JOB, job):
		raise NotFound(f"job {job_id!r} not found")
	return job


def _integer(field: str, value) -> int:
	"""Query strings arrive as text; the engine checks the range."""
	try:
		return int(value)
	except (TypeError, ValueError):
		raise ValidationError(field, f"must be an integer, not {value!r}") from None


def _timestamp(field: str, value) -> datetime | None:
	if value in (None, ""):
		return None
	try:
		return get_datetime(value)
	except Exception:
		raise ValidationError(field, f"is not a date or datetime: {value!r}") from None


@frappe.whitelist(methods=["POST"])
@_engine_errors
def submit_job(
	job_type: str | None = None,
	organization: str | None = None,
	parameters: dict | str | None = None,
	priority: str | None = None,
	depends_on: str | None = None,
	run_at: str | None = None,
	delay: float | str | None = None,
) -> dict:
	"""Missing fields are the engine's 400s naming them; the priority defaults to the job
	type's. Rate limits (per user and per organization) are the engine's too, so every URL to
	this method and every header are counted alike. `run_at` (ISO 8601 with offset) or `delay`
	(seconds, or "10m"): the job stays Scheduled until then."""
	return submit_for_session_user(
		job_type, organization, parameters, priority, depends_on, "api", run_at=run_at, delay=delay
	)


def submit_for_session_user(
	job_type, organization, parameters, priority, depends_on, triggered_by: str, *, run_at=None, delay=None
) -> dict:
	"""A submit the session user asked for (API, desk form, REST insert): their role, their
	organizations, their roles for the engine's rules (job type role, Critical, rate limits)."""
	if not frappe.has_permission(JOB, "create"):
		raise PermissionDenied("you may not submit background jobs")
	check_name("organization", organization or None, required=False)  # bad input before access
	if isinstance(organization, str) and organization and not can_access_organization(organization):
		raise PermissionDenied(f"no access to organization {organization!r}")
	return get_engine().submit(
		job_type,
		organization,
		parameters,
		priority or None,
		depends_on or None,
		user=frappe.session.user,
		triggered_by=triggered_by,
		roles=set(frappe.get_roles()),
		run_at=run_at or None,
		delay=delay if delay not in (None, "") else None,
	)


@frappe.whitelist()
@_engine_errors
def get_job_type_parameters(job_type: str | None = None) -> dict:
	"""What the desk form shows as a hint: the handler's parameters with their defaults, and the
	job type's default priority. Only enabled job types whose handler is registered here."""
	import inspect

	check_name("job_type", job_type or None, required=False)
	_require_read()
	engine = get_engine()
	row = engine.store.get("Job Type", job_type) if isinstance(job_type, str) and job_type else None
	handler = engine.handlers.get(row["handler"]) if row and row["is_enabled"] else None
	if handler is None:
		raise NotFound(f"job type {job_type!r} not found")
	parameters = []
	for name, parameter in list(inspect.signature(handler).parameters.items())[1:]:  # after ctx
		if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
			continue
		default = None if parameter.default is parameter.empty else parameter.default
		parameters.append(
			{"name": name, "required": parameter.default is parameter.empty, "default": default}
		)
	return {
		"job_type": row["name"],
		"parameters": parameters,
		"default_priority": row.get("default_priority") or "Normal",
		"description": row.get("description") or "",
	}


@frappe.whitelist()
@_engine_errors
def get_job_status(job_id: str | None = None) -> dict:
	return get_engine().to_api(_readable_job(job_id))


@frappe.whitelist()
@_engine_errors
def list_jobs(
	organization: str | None = None,
	status: str | None = None,
	job_type: str | None = None,
	from_date: str | None = None,
	to_date: str | None = None,
	limit: int | str = 20,
	offset: int | str = 0,
) -> dict:
	_require_read()
	return get_engine().list_jobs(
		organization=organization or None,
		status=status or None,
		job_type=job_type or None,
		since=_timestamp("from_date", from_date),
		until=_timestamp("to_date", to_date),
		limit=_integer("limit", limit),
		offset=_integer("offset", offset),
		organizations=allowed_organizations(),
	)


@frappe.whitelist(methods=["POST"])
@_engine_errors
def cancel_job(job_id: str | None = None) -> dict:
	_owned_job(job_id, "cancel")
	return get_engine().cancel(job_id, user=frappe.session.user)


@frappe.whitelist(methods=["POST"])
@_engine_errors
def pause_job(job_id: str | None = None) -> dict:
	_owned_job(job_id, "pause")
	return get_engine().pause(job_id, user=frappe.session.user)


@frappe.whitelist(methods=["POST"])
@_engine_errors
def resume_job(job_id: str | None = None) -> dict:
	_owned_job(job_id, "resume")
	return get_engine().resume(job_id, user=frappe.session.user)


def _owned_job(job_id: str | None, action: str) -> dict:
	"""Cancel, pause and resume: the job's owner or an admin."""
	job = _readable_job(job_id)
	if job["owner_user"] != frappe.session.user and not is_admin():
		raise PermissionDenied(f"only the job's owner or an admin may {action} it")
	return job


@frappe.whitelist(methods=["POST"])
@_engine_errors
def retry_job(job_id: str | None = None, failed_items_only: bool | int | str = False) -> dict:
	_require_admin()
	_readable_job(job_id)
	return get_engine().retry(
		job_id, user=frappe.session.user, failed_items_only=_flag("failed_items_only", failed_items_only)
	)


def _flag(field: str, value) -> bool:
	"""A form or query string sends 0/1 or true/false as text."""
	if isinstance(value, bool):
		return value
	if value in (0, 1, "0", "1", "true", "false", "True", "False", ""):
		return str(value).lower() in ("1", "true")
	raise ValidationError(field, f"must be true or false, not {value!r}")


@frappe.whitelist()
@_engine_errors
def get_job_items(
	job_id: str | None = None, status: str | None = None, limit: int | str = 20, offset: int | str = 0
) -> dict:
	"""A page of the job's items (ctx.each) in list order, of one status if given."""
	_readable_job(job_id)
	return get_engine().job_items(
		job_id, status=status or None, limit=_integer("limit", limit), offset=_integer("offset", offset)
	)


@frappe.whitelist(methods=["POST"])
@_engine_errors
def pause_job_type(job_type: str | None = None, paused: bool | int | str = True) -> dict:
	"""Admins: hold a job type's jobs (queued ones wait, running ones pause), or resume it."""
	_require_admin()
	if not isinstance(job_type, str) or not job_type:
		raise ValidationError("job_type", "is required")
	return get_engine().pause_job_type(job_type, _flag("paused", paused), user=frappe.session.user)


@frappe.whitelist()
@_engine_errors
def get_job_history(job_id: str | None = None) -> dict:
	_readable_job(job_id)
	return get_engine().history(job_id)


@frappe.whitelist()
@_engine_errors
def get_job_metrics(organization: str | None = None) -> dict:
	from dartwing.dartwing_core.background_jobs.metrics import collect

	_require_read()
	allowed = allowed_organizations()
	if allowed is not None and not organization:
		raise PermissionDenied("only admins see all organizations; name one you may access")
	return collect(get_engine(), organization=organization or None, organizations=allowed)


@frappe.whitelist(methods=["POST"])
@_engine_errors
def delete_job(job_id: str | None = None) -> dict:
	"""Admins clear finished jobs (the dead-letter queue) with their history."""
	_require_admin()
	job = _readable_job(job_id)
	if job["status"] not in TERMINAL:
		raise InvalidState(f"job {job_id} is {job['status']}; cancel it before deleting it")
	frappe.delete_doc(JOB, job_id, force=True)
	return {"deleted": job_id}
