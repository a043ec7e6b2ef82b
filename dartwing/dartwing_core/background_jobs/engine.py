"""The rules of the engine: submit, cancel, retry, read. Backends only translate these calls."""

import hashlib
import inspect
import json
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta, timezone, tzinfo

from . import states, throttle, tracing
from .dependencies import at_flight_limit, settle_pending
from .errors import (
	DuplicateJob,
	InvalidState,
	NotFound,
	PermissionDenied,
	QueueFull,
	UniqueViolation,
	ValidationError,
)
from .ports import Access, Events, Message, Queue, Store, organization_scope
from .registry import Registry, registry
from .serialize import iso, item_to_api, job_to_api, log_to_api
from .settings import Settings
from .timing import due_time
from .transitions import ITEM, JOB, LOG, Move, log_row, new_name, transition, transition_all
from .waiting import wait

logger = logging.getLogger("dartwing.jobs")
MAX_OFFSET = 2**31 - 1  # list offsets beyond this are bad input, not a database error


def utcnow() -> datetime:
	"""Naive UTC: what the standalone store keeps; the Frappe backend passes its own clock."""
	return datetime.now(timezone.utc).replace(tzinfo=None)


def check_name(field: str, value, *, required: bool = True) -> None:
	"""Names the engine stores (varchar(140)), hashes and writes into the audit log: UTF-8 text
	without NUL, as every database keeps it."""
	if value is None and not required:
		return
	if not isinstance(value, str) or not value.strip() or len(value) > 140:
		raise ValidationError(field, "must be a non-empty string of at most 140 characters")
	if "\x00" in value:
		raise ValidationError(field, "must not contain NUL characters")
	try:
		value.encode()
	except UnicodeEncodeError:
		raise ValidationError(field, "is not valid Unicode text") from None


def check_page(limit, offset) -> None:
	if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 100:
		raise ValidationError("limit", "must be an integer from 1 to 100")
	if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= MAX_OFFSET:
		raise ValidationError("offset", f"must be an integer from 0 to {MAX_OFFSET}")


def canonical_json(params: dict) -> str:
	"""Parameters as stored and hashed: one text for equal objects."""
	return json.dumps(params, sort_keys=True, separators=(",", ":"))


def hash_job(job_type: str, organization: str, canonical: str, key: str = "") -> str:
	"""The duplicate guard's hash; `key` sets apart runs that are distinct on purpose (a
	schedule's due time), which must not count as duplicates of each other."""
	text = f"{job_type}\0{organization}\0{canonical}" + (f"\0{key}" if key else "")
	return hashlib.sha256(text.encode()).hexdigest()


def first_log(job: dict, status: str, now: datetime, actor: str, message: str) -> dict:
	"""Give a new job row its status and return its first log row (a Queued one its message id)."""
	if status == states.QUEUED:
		job.update(queued_at=now, queue_job_id=f"{job['name']}-1")
	log = log_row(job, status, now, actor, message, 0)
	job.update(status=status, transition_count=1, chain_head=log["entry_hash"])
	return log


class AllowAll:
	"""The standalone access policy: whoever may call the engine may run its jobs."""

	claim_links: dict = {}

	def check_run(self, job: dict, linked: dict) -> None:
		return None

	def run_as(self, user: str) -> AbstractContextManager[None]:
		return nullcontext()


class Engine:
	def __init__(
		self,
		store: Store,
		queue: Queue,
		events: Events,
		settings: Settings | None = None,
		handlers: Registry = registry,
		clock: Callable[[], datetime] = utcnow,
		lock_client=None,
		access: Access | None = None,
		tz: tzinfo = timezone.utc,
		on_transition: Sequence[Callable[["Engine", dict, dict], None]] = (),
	):
		self.store = store
		self.queue = queue
		self.events = events
		self.settings = settings or Settings.from_env()
		self.handlers = handlers
		self.now = clock
		self.lock_client = lock_client  # a redis client for periodic-task locks
		self.access = access or AllowAll()
		self.tz = tz  # the zone of the naive datetimes `clock` returns and the store keeps
		# Called with (engine, row before, row after) once a status change is written (the Frappe
		# backend runs the site's Notifications and Webhooks there); never fails the transition.
		self.on_transition = tuple(on_transition)

	def to_api(self, job: dict) -> dict:
		return job_to_api(job, self.now(), self.tz)

	# -- submit -------------------------------------------------------------------------------

	@tracing.producer
	def submit(
		self,
		job_type: str,
		organization: str,
		parameters: dict | str | None = None,
		priority: str | None = None,
		depends_on: str | None = None,
		user: str = "Administrator",
		triggered_by: str = "api",
		roles: set[str] | None = None,
		*,
		run_at: datetime | str | None = None,
		delay: float | str | None = None,
	) -> dict:
		"""Validate everything, then write the job and its first log row in one transaction and
		hand it to the queue. Returns at once; nothing is written when a check fails.

		`roles` are the submitting user's, given for a submit a user asked for (API, desk): then
		the job type's role, the Critical roles and the submit rate limits apply. Trusted code
		(the CLI, a feature's own Python) passes None. With an OpenTelemetry SDK configured, it
		runs in a producer span whose traceparent the job keeps (tracing.py).

		`run_at` (a datetime, naive in the engine's zone, or ISO 8601 text with its offset) or
		`delay` (seconds, or text like "10m"): the job stays Scheduled until then, and the
		scheduler queues it; a time already past runs now."""
		with self.store.session():  # one connection for the checks and the write
			job_type_row = self.job_type_for_submit(job_type, roles)
			# The row's own spelling: the database's collation also matches other cases and
			# trailing spaces, which would otherwise hash (and slip past the duplicate guard) apart.
			job_type = job_type_row["name"]
			params = self.checked_parameters(parameters, job_type_row)
			priority = self.priority_for_submit(priority, job_type_row, roles)
			check_name("user", user)
			check_name("triggered_by", triggered_by)
			check_name("organization", organization or None, required=False)
			check_name("depends_on", depends_on or None, required=False)
			canonical = canonical_json(params)
			now = self.now()
			due = due_time(run_at, delay, now, self.tz)
			job = self.new_job(
				job_type_row,
				canonical,
				priority,
				user,
				triggered_by,
				now,
				depends_on=depends_on or None,
				run_at=due,
			)
			job["traceparent"] = tracing.traceparent(job)
			counted = None
			try:
				with self.store.transaction():
					org = self.organization_for_submit(organization)
					# The row's own spelling, as for the job type: the rate limit, the hash and the
					# stored job all name the organization one way however the caller spelled it.
					organization = org["name"]
					if roles is not None:
						counted = throttle.admit(self, user, organization)
					job_hash = hash_job(job_type, organization, canonical)
					job.update(organization=organization, job_hash=job_hash, active_hash=job_hash)
					self._refuse_duplicate(job_hash, job_type_row, now)
					self.refuse_full_queue(org)
					status = self._initial_status(depends_on, organization)
					if due is not None and due > now:
						status = states.SCHEDULED  # queued by the scheduler once due
					elif status == states.QUEUED and at_flight_limit(self, org):
						status = states.PENDING  # released as the organization's earlier jobs end
					message = f"Submitted by {user}"
					if status == states.SCHEDULED:
						message += f" to run at {iso(due, self.tz)}"
					log = first_log(job, status, now, user, message)
					self.store.insert(JOB, job)
					self.store.insert(LOG, log)
			except BaseException as exc:
				throttle.refund(self, counted)  # a refused submit spends nothing of the limits
				if isinstance(exc, UniqueViolation):
					self._raise_if_racer(job.get("job_hash"))
				raise
		self.publish_status(job)
		if job["status"] == states.QUEUED:
			self.dispatch(job)
		return self.to_api(job)

	@staticmethod
	def new_job(
		job_type_row: dict,
		canonical: str,
		priority: str,
		user: str,
		triggered_by: str,
		now: datetime,
		**values,
	) -> dict:
		"""A job row before its organization, hash and status: what submit and the schedules'
		tick both write (`values`: depends_on, run_at, schedule, ...)."""
		return {
			"name": new_name(),
			"job_type": job_type_row["name"],
			"owner_user": user,
			"owner": user,
			"modified_by": user,
			"triggered_by": triggered_by,
			"priority": priority,
			"input_parameters": canonical,
			"max_retries": int(job_type_row["max_retries"]),
			"timeout_seconds": int(job_type_row["default_timeout"]),
			"retry_count": 0,
			"progress": 0,
			"transition_count": 0,
			"creation": now,
			"modified": now,
			**values,
		}

	def job_type_for_submit(self, job_type, roles) -> dict:
		if not isinstance(job_type, str) or not job_type:
			raise ValidationError("job_type", "is required")
		check_name("job_type", job_type)
		row = self.store.get("Job Type", job_type)
		if row is None:
			raise ValidationError("job_type", f"unknown job type {job_type!r}")
		if not row["is_enabled"]:
			raise ValidationError("job_type", f"job type {job_type!r} is disabled")
		if self.handlers.get(row["handler"]) is None:
			raise ValidationError(
				"job_type", f"handler {row['handler']!r} is not registered here (import its module)"
			)
		required_role = row.get("requires_permission")
		if required_role and roles is not None and required_role not in roles:
			raise PermissionDenied(f"job type {job_type!r} requires the role {required_role!r}")
		return row

	def priority_for_submit(self, priority, job_type_row: dict, roles: set[str] | None) -> str:
		"""The given priority or the job type's default; Critical only for the roles the job
		type names (by default the admin roles). `roles` None: a trusted caller (CLI, Python)."""
		priority = priority or job_type_row.get("default_priority") or "Normal"
		if priority not in states.PRIORITIES:
			raise ValidationError(
				"priority", f"must be one of {', '.join(states.PRIORITIES)}, not {priority!r}"
			)
		if priority == states.CRITICAL and roles is not None:
			named = (job_type_row.get("critical_roles") or "").splitlines()
			allowed = {role.strip() for role in named if role.strip()} or set(states.CRITICAL_ROLES)
			if not allowed & roles:
				raise PermissionDenied(
					f"priority Critical of job type {job_type_row['name']!r} is reserved to the roles "
					f"{', '.join(sorted(allowed))}"
				)
		return priority

	def checked_parameters(self, parameters, job_type_row: dict) -> dict:
		if parameters is None or parameters == "":
			parameters = {}
		if isinstance(parameters, str):
			try:
				parameters = json.loads(parameters)
			except (ValueError, RecursionError) as exc:
				raise ValidationError("parameters", f"is not valid JSON: {exc}") from None
		if not isinstance(parameters, dict):
			raise ValidationError("parameters", f"must be a JSON object, not {type(parameters).__name__}")
		try:
			encoded = json.dumps(parameters, sort_keys=True, allow_nan=False, ensure_ascii=False).encode()
		except UnicodeEncodeError:  # a lone surrogate, which no database column can hold
			raise ValidationError("parameters", "contain text that is not valid Unicode") from None
		except (TypeError, ValueError, RecursionError) as exc:
			raise ValidationError("parameters", f"must be JSON-serializable: {exc}") from None
		if len(encoded) > self.settings.max_parameter_bytes:
			raise ValidationError("parameters", f"exceed {self.settings.max_parameter_bytes} bytes as JSON")
		handler = self.handlers.get(job_type_row["handler"])
		try:
			inspect.signature(handler).bind(None, **parameters)
		except TypeError as exc:
			raise ValidationError(
				"parameters", f"do not fit handler {job_type_row['handler']!r}: {exc}"
			) from None
		return parameters

	def organization_for_submit(self, organization) -> dict:
		if not isinstance(organization, str) or not organization:
			raise ValidationError("organization", "is required")
		org = self.store.get("Organization", organization, for_update=True)
		if org is None:
			raise ValidationError("organization", f"unknown organization {organization!r}")
		if org["status"] != "Active":
			raise ValidationError("organization", f"organization {organization!r} is {org['status']}")
		return org

	def _raise_if_active(self, job_hash: str, for_update: bool = False) -> None:
		"""DuplicateJob naming the unfinished job that holds `job_hash`, if there is one."""
		found = self.store.get_all(
			JOB, [("active_hash", "=", job_hash)], ["name", "status"], limit=1, for_update=for_update
		)
		if found:
			raise DuplicateJob(found[0]["name"], found[0]["status"])

	def _raise_if_racer(self, job_hash: str) -> None:
		"""After the unique index refused `job_hash`: the job that took it has committed, but a
		session at REPEATABLE READ (a Frappe web request) may read a snapshot from before it.
		A locking read sees it, so the caller gets DuplicateJob naming it, not a server error."""
		with self.store.transaction():
			self._raise_if_active(job_hash, for_update=True)

	def _refuse_duplicate(self, job_hash: str, job_type_row: dict, now: datetime) -> None:
		self._raise_if_active(job_hash)
		window = int(job_type_row.get("deduplication_window") or 0)
		found = None
		if window > 0:
			since = now - timedelta(seconds=window)
			# A canceled job produced nothing, so it does not block submitting the same work again.
			found = self.store.get_all(
				JOB,
				[("job_hash", "=", job_hash), ("creation", ">=", since), ("status", "!=", states.CANCELED)],
				["name", "status"],
				order_by="creation desc",
				limit=1,
			)
		if found:
			raise DuplicateJob(found[0]["name"], found[0]["status"])

	def refuse_full_queue(self, org: dict) -> None:
		limit = int(org.get("max_queued_jobs") or 0)  # 0 means no limit
		if limit:
			unfinished = self.store.count(
				JOB, [("organization", "=", org["name"]), ("status", "in", states.UNFINISHED)]
			)
			if unfinished >= limit:
				raise QueueFull(
					f"organization {org['name']!r} has {unfinished} unfinished jobs (limit {limit})"
				)

	def _initial_status(self, depends_on, organization: str) -> str:
		if not depends_on:
			return states.QUEUED
		if not isinstance(depends_on, str):
			raise ValidationError("depends_on", f"must be a job id, not {type(depends_on).__name__}")
		parent = self.store.get(JOB, depends_on)
		if parent is None or parent["organization"] != organization:
			# One answer from one line (a traceback shows the line): another organization's ids
			# stay unconfirmed.
			raise ValidationError("depends_on", f"unknown job {depends_on!r}")
		if parent["status"] in (states.CANCELED, states.DEAD_LETTER):
			raise ValidationError(
				"depends_on", f"job {depends_on} ended {parent['status']}; it will never complete"
			)
		return states.QUEUED if parent["status"] == states.COMPLETED else states.PENDING

	# -- reading ------------------------------------------------------------------------------

	def get_job(self, job_id: str) -> dict:
		job = self.store.get(JOB, job_id) if isinstance(job_id, str) and job_id else None
		if job is None:
			raise NotFound(f"job {job_id!r} not found")
		return job

	def status(self, job_id: str) -> dict:
		return self.to_api(self.get_job(job_id))

	def list_jobs(
		self,
		organization: str | None = None,
		status: str | None = None,
		job_type: str | None = None,
		since: datetime | None = None,
		until: datetime | None = None,
		limit: int = 20,
		offset: int = 0,
		organizations: list[str] | None = None,
	) -> dict:
		"""One page of jobs, newest first. `organizations` bounds what the caller may see."""
		check_page(limit, offset)
		check_name("organization", organization, required=False)
		check_name("job_type", job_type, required=False)
		if status is not None and status not in states.STATUSES:
			raise ValidationError("status", f"must be one of {', '.join(states.STATUSES)}")
		filters = organization_scope(organization, organizations)
		if status:
			filters.append(("status", "=", status))
		if job_type:
			filters.append(("job_type", "=", job_type))
		if since:
			filters.append(("creation", ">=", since))
		if until:
			filters.append(("creation", "<", until))
		rows = self.store.get_all(
			JOB, filters, order_by="creation desc, name desc", limit=limit, offset=offset
		)
		now = self.now()
		return {
			"jobs": [job_to_api(r, now, self.tz) for r in rows],
			"total": self.store.count(JOB, filters),
			"limit": limit,
			"offset": offset,
		}

	def history(self, job_id: str) -> dict:
		from .audit import verify_chain

		job = self.get_job(job_id)
		logs = self.store.get_all(LOG, [("background_job", "=", job_id)], order_by="sequence asc")
		report = verify_chain(job.get("chain_head"), logs)
		return {
			"job_id": job_id,
			"entries": [log_to_api(row, self.tz) for row in logs],
			"chain_valid": report.ok,
			"chain_problem": report.problem or None,
		}

	def job_items(self, job_id: str, status: str | None = None, limit: int = 20, offset: int = 0) -> dict:
		"""One page of a job's items (ctx.each) in list order, of one status if given."""
		from .items import ITEM_STATUSES

		check_page(limit, offset)
		if status is not None and status not in ITEM_STATUSES:
			raise ValidationError("status", f"must be one of {', '.join(ITEM_STATUSES)}")
		job = self.get_job(job_id)
		filters = [("background_job", "=", job["name"])]
		if status:
			filters.append(("status", "=", status))
		rows = self.store.get_all(ITEM, filters, order_by="item_index asc", limit=limit, offset=offset)
		return {
			"job_id": job["name"],
			"items": [item_to_api(row, self.tz) for row in rows],
			"total": self.store.count(ITEM, filters),
			"limit": limit,
			"offset": offset,
		}

	def wait(self, job_id: str, timeout: float | None = None):
		"""What the Completed job's handler returned (its result dict, output reference or None);
		JobFailed when it ended Dead Letter or Canceled; TimeoutError after `timeout` seconds.
		Listens to the job's events rather than polling its row (waiting.py)."""
		return wait(self, job_id, timeout)

	# -- actions ------------------------------------------------------------------------------

	def cancel(self, job_id: str, user: str = "Administrator") -> dict:
		"""Pending, Queued and waiting jobs stop at once; a Running one at its next checkpoint."""
		check_name("user", user)
		for _ in range(5):
			job = self.get_job(job_id)
			if job["status"] in states.TERMINAL:
				raise InvalidState(f"job {job_id} is {job['status']}; only unfinished jobs can be canceled")
			now = self.now()
			if job["status"] == states.RUNNING:
				if job.get("cancel_requested_at"):
					return self.to_api(job)
				done = transition(
					self,
					job,
					states.RUNNING,
					actor=user,
					message=f"Cancel requested by {user}",
					values={"cancel_requested_at": now, "canceled_by": user},
				)
			else:
				done = transition(
					self,
					job,
					states.CANCELED,
					actor=user,
					message=f"Canceled by {user}",
					values={"canceled_at": now, "canceled_by": user, "next_retry_at": None},
				)
			if done:
				return self.to_api(done)
		raise InvalidState(f"job {job_id} kept changing; try again")

	def pause(self, job_id: str, user: str = "Administrator") -> dict:
		"""Pending, Queued and waiting jobs pause at once (a queue message that arrives later is
		skipped); a Running one at its next checkpoint (a step, an item, progress), without
		counting the attempt. Paused jobs wait for resume()."""
		check_name("user", user)
		for _ in range(5):
			job = self.get_job(job_id)
			if job["status"] == states.RUNNING:
				if job.get("pause_requested_at"):
					return self.to_api(job)
				values = {"pause_requested_at": self.now(), "paused_by": user}
				done = transition(
					self, job, states.RUNNING, actor=user, message=f"Pause requested by {user}", values=values
				)
			elif job["status"] in states.PAUSABLE_AT_ONCE:
				values = {"paused_at": self.now(), "paused_by": user, "next_retry_at": None}
				done = transition(
					self, job, states.PAUSED, actor=user, message=f"Paused by {user}", values=values
				)
			else:
				raise InvalidState(
					f"job {job_id} is {job['status']}; only {', '.join(states.PAUSABLE_AT_ONCE)} and "
					"Running jobs can be paused"
				)
			if done:
				return self.to_api(done)
		raise InvalidState(f"job {job_id} kept changing; try again")

	def resume(self, job_id: str, user: str = "Administrator") -> dict:
		"""A Paused job goes back to the queue (or to Pending while its parent or its
		organization's room waits) and continues from its saved steps and items."""
		check_name("user", user)
		job = self.get_job(job_id)
		if job["status"] != states.PAUSED:
			raise InvalidState(f"job {job_id} is {job['status']}; only Paused jobs can be resumed")
		job_type = self.store.get("Job Type", job["job_type"]) or {}
		if job_type.get("is_paused"):
			raise InvalidState(f"job type {job['job_type']} is paused; resume the job type")
		done = self._resume(job, user, f"Resumed by {user}")
		if done is None:
			raise InvalidState(f"job {job_id} changed while resuming; try again")
		return self.to_api(done)

	def _resume(self, job: dict, actor: str, message: str) -> dict | None:
		values = {"paused_at": None, "paused_by": None, "pause_requested_at": None}
		if job.get("run_at") and job["run_at"] > self.now() and not job.get("started_at"):
			# Paused before its time came: it waits for that time again, as it did.
			return transition(self, job, states.SCHEDULED, actor=actor, message=message, values=values)
		if job.get("depends_on") and not job.get("queued_at"):
			# Paused while it waited for its parent (a job queued once had its parent complete,
			# which may have been purged since): Pending while the parent runs, canceled at once,
			# saying why, if the parent ended otherwise meanwhile, as settle_pending decides.
			parent = self.store.get(JOB, job["depends_on"])
			if parent is None or parent["status"] != states.COMPLETED:
				pending = transition(self, job, states.PENDING, actor=actor, message=message, values=values)
				return pending and (settle_pending(self, pending, parent, actor) or pending)
		org = self.store.get("Organization", job["organization"]) or {}
		if org.get("status") != "Active" or at_flight_limit(self, org):
			# released as its organization's room (or its resumption) allows
			return transition(self, job, states.PENDING, actor=actor, message=message, values=values)
		return self.requeue(job, actor=actor, message=message)

	def pause_job_type(self, job_type: str, paused: bool = True, user: str = "Administrator") -> dict:
		"""Pause a job type: its queued jobs wait (their messages are skipped, and the scheduler
		leaves them alone), its running ones pause at their next checkpoint; submits are still
		taken. Resuming sends its queued jobs again and resumes the jobs its pause paused."""
		check_name("user", user)
		check_name("job_type", job_type)
		row = self.store.get("Job Type", job_type)
		if row is None:
			raise NotFound(f"job type {job_type!r} not found")
		if bool(row.get("is_paused")) == paused:
			raise InvalidState(f"job type {row['name']} is {'already' if paused else 'not'} paused")
		self.store.update("Job Type", row["name"], {"is_paused": int(paused)})
		logger.info("Job type %s %s by %s", row["name"], "paused" if paused else "resumed", user)
		resumed = 0
		if not paused:
			queued = self.store.get_all(JOB, [("job_type", "=", row["name"]), ("status", "=", states.QUEUED)])
			self.dispatch_all(queued)
			waiting = self.store.get_all(
				JOB,
				[
					("job_type", "=", row["name"]),
					("status", "=", states.PAUSED),
					("paused_by", "=", states.TYPE_PAUSE),
				],
			)
			for job in waiting:
				resumed += (
					self._resume(job, user, f"Resumed with job type {row['name']} by {user}") is not None
				)
		return {"job_type": row["name"], "is_paused": paused, "resumed_jobs": resumed}

	def retry(self, job_id: str, user: str = "Administrator", failed_items_only: bool = False) -> dict:
		"""Admin retry of a Failed, Timed Out or Dead Letter job: queued now, with a fresh budget.
		It resumes from the job's saved steps and items (done ones are not run again);
		`failed_items_only` asks for just that, and is refused when no item failed."""
		check_name("user", user)
		if not isinstance(failed_items_only, bool):
			raise ValidationError("failed_items_only", "must be true or false")
		job = self.get_job(job_id)
		if job["status"] not in states.ADMIN_RETRYABLE:
			raise InvalidState(
				f"job {job_id} is {job['status']}; only {', '.join(states.ADMIN_RETRYABLE)} jobs can be retried"
			)
		message = f"Retried by {user}"
		if failed_items_only:
			failed = self.store.count(ITEM, [("background_job", "=", job_id), ("status", "=", "Failed")])
			if not failed:
				raise InvalidState(f"job {job_id} has no failed items to retry")
			message = f"Retried by {user}: its {failed} failed items"
		try:
			done = self.requeue(job, actor=user, message=message, reset_retries=True)
		except UniqueViolation:
			self._raise_if_racer(job.get("job_hash"))
			raise InvalidState(
				f"job {job_id} conflicted with another job that has since ended; try again"
			) from None
		if done is None:
			raise InvalidState(f"job {job_id} changed while retrying; try again")
		return self.to_api(done)

	# -- used by the executor and the scheduler ----------------------------------------------

	def requeue(self, job: dict, *, actor: str, message: str, reset_retries: bool = False) -> dict | None:
		done = transition(
			self,
			job,
			states.QUEUED,
			actor=actor,
			message=message,
			values=self.requeued_values(job, reset_retries),
		)
		if done:
			self.dispatch(done)
		return done

	def requeue_all(self, jobs: Sequence[tuple[dict, str]], *, actor: str) -> list[dict]:
		"""requeue() of each (job, message) in one transaction, then one dispatch for the lot: the
		scheduler's due retries. A job is sent only once its Queued row is committed."""
		moves: list[Move] = [
			{
				"job": job,
				"to_status": states.QUEUED,
				"actor": actor,
				"message": message,
				"values": self.requeued_values(job),
			}
			for job, message in jobs
		]
		done = [job for job in transition_all(self, moves) if job]
		self.dispatch_all(done)
		return done

	def requeued_values(self, job: dict, reset_retries: bool = False) -> dict:
		values = {
			"queued_at": self.now(),
			"queue_job_id": f"{job['name']}-{job['transition_count'] + 1}",
			"next_retry_at": None,
			"cancel_requested_at": None,
			"pause_requested_at": None,
			"paused_at": None,
			"paused_by": None,
			"worker_name": None,
			"lease_expires_at": None,
			"active_hash": job["job_hash"],
		}
		if reset_retries:
			values.update(
				retry_count=0, error_type=None, error_message=None, error_traceback=None, progress=0
			)
		return values

	def dispatch(self, job: dict) -> None:
		"""Hand a committed Queued job to the queue. If that fails the scheduler redispatches it."""
		try:
			self.queue.enqueue(job["name"], job["queue_job_id"], job["priority"], int(job["timeout_seconds"]))
		except Exception:
			logger.warning(
				"Dispatch failed job_id=%s; the scheduler will retry it", job["name"], exc_info=True
			)

	def dispatch_all(self, jobs: Sequence[dict]) -> None:
		"""dispatch() of committed Queued jobs in as few round trips as the queue allows."""
		if not jobs:
			return
		try:
			self.queue.enqueue_many(
				[
					Message(job["name"], job["queue_job_id"], job["priority"], int(job["timeout_seconds"]))
					for job in jobs
				]
			)
		except Exception:
			logger.warning(
				"Dispatch of %d jobs failed (first job_id=%s); the scheduler will retry them",
				len(jobs),
				jobs[0]["name"],
				exc_info=True,
			)

	def transitioned(self, before: dict, after: dict) -> None:
		"""Run the on_transition observers of one status change: a courtesy, like events."""
		for observer in self.on_transition:
			try:
				observer(self, before, after)
			except Exception:
				logger.warning("After-transition hook failed job_id=%s", after.get("name"), exc_info=True)

	def publish_status(self, job: dict) -> None:
		self.publish("job_status_changed", job)

	def publish_all_status(self, jobs: list[dict]) -> None:
		"""Status events of a batch's jobs in one round trip; a courtesy, as publish()."""
		if not jobs:
			return
		try:
			self.events.publish_many([("job_status_changed", self.to_api(job)) for job in jobs])
		except Exception:
			logger.warning("Publishing the status of %d jobs failed", len(jobs), exc_info=True)

	def publish(self, event: str, job: dict, **extra) -> None:
		"""Events are a courtesy to watchers; losing one must never fail the job."""
		try:
			self.events.publish(event, {**self.to_api(job), **extra})
		except Exception:
			logger.warning("Publishing %s failed job_id=%s", event, job.get("name"), exc_info=True)
