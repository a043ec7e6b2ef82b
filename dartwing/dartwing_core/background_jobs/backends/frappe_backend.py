"""The Frappe backend of the engine: Store over frappe.db, Queue over frappe.enqueue, Events over
frappe.publish_realtime, Access over Frappe users and User Permissions. It translates; the
engine decides. The only module of background_jobs that imports frappe.

Transactions: the engine's transaction is a savepoint. It commits only work that is its own: in a
web request, or when the caller already holds uncommitted writes, the caller's commit carries the
job row, and the queue message and realtime events wait for that commit (enqueue_after_commit),
so a job never runs for a transaction that rolled back."""

import contextlib
import functools
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from zoneinfo import ZoneInfo

import frappe
import redis
from frappe.query_builder import Order
from frappe.query_builder.functions import Count
from frappe.realtime import get_doc_room, get_user_room
from frappe.utils import now_datetime
from frappe.utils.background_jobs import (
	create_job_id,
	get_queues_timeout,
	get_redis_conn,
	get_redis_connection_without_auth,
)
from frappe.utils.response import json_handler
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError

from .. import schema
from ..engine import Engine
from ..errors import PermissionDenied, UniqueViolation, ValidationError
from ..ports import Filter, compare_and_set_in_steps, order_terms
from ..registry import env_imports, import_handler_modules
from ..settings import Settings
from ..transitions import JOB
from .rq_queue import BACKSTOP_SECONDS, message_waiting

logger = logging.getLogger("dartwing.jobs")
RUN_JOB = "dartwing.dartwing_core.background_jobs.backends.frappe_backend.run_job"
# One RQ queue per priority; a bench declares them under `workers` in common_site_config.json
# and lists them first to last in `bench worker --queue`. Without them, the stock queues serve.
PRIORITY_QUEUES = {
	"Critical": "dartwing_critical",
	"High": "dartwing_high",
	"Normal": "dartwing_normal",
	"Low": "dartwing_low",
}
STOCK_QUEUES = {"Critical": "short", "High": "short", "Normal": "default", "Low": "long"}
EVENTS = {"job_status_changed": "dartwing_job_status", "job_progress": "dartwing_job_progress"}
ADMIN_ROLES = ("System Manager", "Dartwing Admin")
HANDLER_HOOK = "dartwing_job_handlers"
_SAVEPOINT = "dartwing_tx"
_NO_LIMIT = 2**63 - 1


# Rows that Frappe deletes with the document they refer to (frappe.model.delete_doc), and rows it
# keeps but unlinks (an e-mail or an activity outlives the document it was about).
DELETED_WITH_DOCUMENT = (
	("Comment", "reference_doctype", "reference_name"),
	("ToDo", "reference_type", "reference_name"),
	("DocShare", "share_doctype", "share_name"),
	("Document Follow", "ref_doctype", "ref_docname"),
	("Tag Link", "document_type", "document_name"),
	("Version", "ref_doctype", "docname"),
	("View Log", "reference_doctype", "reference_name"),
	("Notification Log", "document_type", "document_name"),
	("Email Unsubscribe", "reference_doctype", "reference_name"),
	("Communication Link", "link_doctype", "link_name"),
)
UNLINKED_FROM_DOCUMENT = (
	("Communication", "reference_doctype", "reference_name"),
	("Activity Log", "reference_doctype", "reference_name"),
	("Activity Log", "timeline_doctype", "timeline_name"),
)


def in_open_transaction() -> bool:
	"""True when the current commit is not ours to make: a web request (Frappe commits it at the
	end), a handler running (its transaction is its own, whatever it wrote), or a caller's
	uncommitted writes. Frappe counts only statements starting with insert/update/delete, so a
	handler's `select ... for update` alone would not show."""
	in_request = getattr(frappe.local, "request", None) is not None and not getattr(frappe.local, "job", None)
	return (
		in_request
		or getattr(frappe.local, "dartwing_in_handler", False)
		or bool(frappe.db.transaction_writes)
	)


def _commit() -> None:
	"""frappe.db.commit() without the START TRANSACTION it sends after COMMIT: autocommit is off,
	so the next statement opens a transaction anyway. One round trip less per transition; the
	commit hooks (realtime events, enqueue_after_commit) run as in Frappe's."""
	db = frappe.db
	db.before_rollback.reset()
	db.after_rollback.reset()
	db.before_commit.run()
	db.sql("commit")
	db.after_commit.run()


def _in_site(method):
	"""Run a store method with a site connection (opened for threads that have none)."""

	@functools.wraps(method)
	def wrapper(self, *args, **kwargs):
		with self._site():
			return method(self, *args, **kwargs)

	return wrapper


def _written(method):
	"""A write outside transaction() is a transaction of its own, as on the standalone store:
	progress saved by a worker must be committed, or its events (which wait for the commit of
	open writes) would all arrive at the end of the job."""

	@functools.wraps(method)
	def wrapper(self, *args, **kwargs):
		with self.transaction():
			return method(self, *args, **kwargs)

	return wrapper


def _is_unique_violation(exc: Exception) -> bool:
	return any(
		getattr(frappe.db, check)(exc)
		for check in ("is_unique_key_violation", "is_primary_key_violation", "is_duplicate_entry")
		if hasattr(frappe.db, check)
	)


class FrappeStore:
	def __init__(self, site: str, sites_path: str = "."):
		self.site = site
		self.sites_path = sites_path
		self._columns: dict[str, set[str]] = {}

	@contextmanager
	def _site(self) -> Iterator[None]:
		"""frappe.db is per thread: a thread with none (the heartbeat) opens its own connection."""
		if getattr(frappe.local, "db", None) is not None:
			yield
			return
		frappe.init(site=self.site, sites_path=self.sites_path)
		try:
			frappe.connect()
			yield
			frappe.db.commit()
		finally:
			frappe.destroy()

	@contextmanager
	def transaction(self) -> Iterator[None]:
		with self._site():
			depth = getattr(frappe.local, "dartwing_tx_depth", 0)
			if depth:
				yield  # nested: the outer transaction decides
				return
			ours = not in_open_transaction()
			writes_before = frappe.db.transaction_writes
			if not ours:  # ours ends in COMMIT or a full ROLLBACK: no savepoint needed
				frappe.db.savepoint(_SAVEPOINT)
			frappe.local.dartwing_tx_depth = 1
			try:
				yield
			except BaseException:
				if ours:
					frappe.db.rollback()  # also drops the row and gap locks taken since the savepoint
				else:
					frappe.db.rollback(save_point=_SAVEPOINT)
					# Frappe zeroes its write count on any "rollback ..." statement, a savepoint's
					# too: the caller's writes are still open, and the next transaction must not
					# commit them.
					frappe.db.transaction_writes = writes_before
				raise
			finally:
				frappe.local.dartwing_tx_depth = 0
			if ours:
				_commit()
			else:
				frappe.db.release_savepoint(_SAVEPOINT)

	def session(self) -> AbstractContextManager[None]:
		"""frappe.db is already one connection per site and thread."""
		return nullcontext()

	def keep_connection(self) -> AbstractContextManager[None]:
		return nullcontext()  # as session(): frappe.db already is

	@_in_site
	def get(self, doctype: str, name: str, *, for_update: bool = False) -> dict | None:
		table = frappe.qb.DocType(doctype)
		query = frappe.qb.from_(table).select("*").where(table.name == name)
		if for_update:
			query = query.for_update()
		rows = query.run(as_dict=True)
		return dict(rows[0]) if rows else None

	@_in_site
	def get_with_links(
		self, doctype: str, name: str, links: Mapping[str, tuple[str, Sequence[str]]]
	) -> tuple[dict | None, dict[str, dict | None]]:
		"""One SELECT with a LEFT JOIN per link (a claim's job, organization and job type)."""
		table = frappe.qb.DocType(doctype)
		query = frappe.qb.from_(table).select(table.star).where(table.name == name)
		for n, (field, (other, fields)) in enumerate(links.items()):
			joined = frappe.qb.DocType(other).as_(f"link{n}")
			query = query.left_join(joined).on(joined.name == self._field(table, doctype, field))
			columns = ["name", *fields]
			query = query.select(*(self._field(joined, other, f).as_(f"__link{n}.{f}") for f in columns))
		rows = query.run(as_dict=True)
		if not rows:
			return None, {field: None for field in links}
		row, linked = {}, {}
		for key, value in rows[0].items():
			if not key.startswith("__link"):
				row[key] = value
		for n, (field, (_doctype, fields)) in enumerate(links.items()):
			found = {f: rows[0][f"__link{n}.{f}"] for f in ["name", *fields]}
			linked[field] = found if found["name"] is not None else None
		return row, linked

	@_in_site
	def get_all(
		self,
		doctype: str,
		filters: Sequence[Filter] = (),
		fields: Sequence[str] = ("*",),
		order_by: str | None = None,
		limit: int | None = None,
		offset: int = 0,
	) -> list[dict]:
		table = frappe.qb.DocType(doctype)
		columns = ["*"] if tuple(fields) == ("*",) else [self._field(table, doctype, f) for f in fields]
		query = self._where(frappe.qb.from_(table).select(*columns), table, doctype, filters)
		for field, descending in order_terms(order_by):
			order = Order.desc if descending else Order.asc
			query = query.orderby(self._field(table, doctype, field), order=order)
		if limit is not None:
			query = query.limit(limit)
		if offset:
			if limit is None:
				query = query.limit(_NO_LIMIT)  # MariaDB has no OFFSET without a LIMIT
			query = query.offset(offset)
		return [dict(r) for r in query.run(as_dict=True)]

	@_in_site
	def count(self, doctype: str, filters: Sequence[Filter] = ()) -> int:
		table = frappe.qb.DocType(doctype)
		query = self._where(frappe.qb.from_(table).select(Count("*")), table, doctype, filters)
		return int(query.run()[0][0])

	@_in_site
	def count_by(self, doctype: str, field: str, filters: Sequence[Filter] = ()) -> dict[str, int]:
		table = frappe.qb.DocType(doctype)
		column = self._field(table, doctype, field)
		query = frappe.qb.from_(table).select(column, Count("*")).groupby(column)
		return {key: int(n) for key, n in self._where(query, table, doctype, filters).run()}

	@_written
	def insert(self, doctype: str, row: dict) -> None:
		values = schema.complete_row(doctype, row, now_datetime(), self._known(doctype))
		columns = ", ".join(f"`{c}`" for c in values)
		placeholders = ", ".join(["%s"] * len(values))
		postgres = frappe.db.db_type == "postgres"  # a failed statement aborts its transaction
		if postgres:
			frappe.db.savepoint("dartwing_insert")
		try:
			frappe.db.sql(
				f"insert into `tab{doctype}` ({columns}) values ({placeholders})", list(values.values())
			)
		except Exception as exc:
			if postgres:
				frappe.db.rollback(save_point="dartwing_insert")
			if _is_unique_violation(exc):
				raise UniqueViolation(str(exc)) from exc
			raise

	@_written
	def update(self, doctype: str, name: str, values: dict, expect: Sequence[Filter] = ()) -> bool:
		table = frappe.qb.DocType(doctype)
		query = frappe.qb.update(table)
		for field, value in values.items():
			query = query.set(self._field(table, doctype, field), value)
		query = self._where(query.where(table.name == name), table, doctype, expect)
		try:
			query.run()
		except Exception as exc:
			if _is_unique_violation(exc):
				raise UniqueViolation(str(exc)) from exc
			raise
		if frappe.db._cursor.rowcount:
			return True
		# MariaDB counts changed rows, not matched ones: a write of equal values still matched.
		# A locking read sees the row as committed now; a plain one could read an old snapshot
		# (REPEATABLE READ) and report a lost compare-and-set as won.
		check = frappe.qb.from_(table).select(table.name).where(table.name == name).for_update()
		return bool(self._where(check, table, doctype, expect).run())

	def compare_and_set(
		self,
		doctype: str,
		name: str,
		values: dict,
		expect: Sequence[Filter],
		*,
		record: tuple[str, dict],
		then_read: tuple[str, Sequence[Filter], Sequence[str]] | None = None,
	) -> list[dict] | None:
		return compare_and_set_in_steps(self, doctype, name, values, expect, record, then_read)

	def update_apart(self, doctype: str, name: str, values: dict, expect: Sequence[Filter] = ()) -> bool:
		"""Progress and heartbeats: committed at once even while a handler's own writes are open,
		so they neither wait for the handler's commit nor lock the job row until it."""
		if getattr(frappe.local, "db", None) is None or not in_open_transaction():
			return self.update(doctype, name, values, expect)
		outcome: dict = {}

		def write() -> None:  # a new thread has no frappe.local: _site opens its own connection
			try:
				with self._site():
					if frappe.db.db_type == "mariadb":
						frappe.db.sql("set session innodb_lock_wait_timeout = 3")
					outcome["changed"] = self.update(doctype, name, values, expect)
			except BaseException as exc:
				outcome["error"] = exc

		thread = threading.Thread(target=write, name="dartwing-apart", daemon=True)
		thread.start()
		thread.join()
		error = outcome.get("error")
		if isinstance(error, frappe.QueryTimeoutError):
			# This very transaction holds the row (a job run inline, inside an open transaction):
			# the write can only go in it.
			return self.update(doctype, name, values, expect)
		if error is not None:
			raise error
		return outcome["changed"]

	@_written
	def delete(self, doctype: str, filters: Sequence[Filter]) -> int:
		table = frappe.qb.DocType(doctype)
		query = self._where(frappe.qb.from_(table).delete(), table, doctype, filters)
		query.run()
		return frappe.db._cursor.rowcount

	@_written
	def delete_references(self, doctype: str, names: Sequence[str]) -> None:
		"""What `frappe.delete_doc` and its `delete_dynamic_links` remove or unlink for one
		document, for a whole purge batch in a few statements. Files go one by one through
		Frappe, which also removes them from disk."""
		names = list(names)
		if not names:
			return
		attached = {"attached_to_doctype": doctype, "attached_to_name": ("in", names)}
		for file_name in frappe.get_all("File", filters=attached, pluck="name"):
			frappe.delete_doc("File", file_name, ignore_permissions=True, delete_permanently=True)
		for table, doctype_field, name_field in DELETED_WITH_DOCUMENT:
			frappe.db.delete(table, {doctype_field: doctype, name_field: ("in", names)})
		for table, doctype_field, name_field in UNLINKED_FROM_DOCUMENT:
			frappe.db.set_value(
				table,
				{doctype_field: doctype, name_field: ("in", names)},
				{doctype_field: None, name_field: None},
				update_modified=False,
			)

	def _known(self, doctype: str) -> set[str]:
		if doctype not in self._columns:
			with self._site():
				self._columns[doctype] = set(frappe.db.get_table_columns(doctype))
		return self._columns[doctype]

	def _field(self, table, doctype: str, field: str):
		if field not in self._known(doctype):
			raise ValidationError(field, f"is not a field of {doctype}")
		return table[field]

	def _where(self, query, table, doctype: str, filters: Sequence[Filter]):
		"""The same meaning as the standalone store: NULL matches `= None` and `is not set` only."""
		for field, op, value in filters:
			column = self._field(table, doctype, field)
			if op == "=":
				query = query.where(column.isnull() if value is None else column == value)
			elif op == "!=":
				query = query.where(column.isnotnull() if value is None else column != value)
			elif op == "<":
				query = query.where(column < value)
			elif op == "<=":
				query = query.where(column <= value)
			elif op == ">":
				query = query.where(column > value)
			elif op == ">=":
				query = query.where(column >= value)
			elif op in ("in", "not in"):
				items = list(value)
				if not items:  # SQL has no empty IN list: nothing is in it, everything is not
					query = query.where(column.isnull() & column.isnotnull()) if op == "in" else query
				else:
					query = query.where(column.isin(items) if op == "in" else column.notin(items))
			elif op == "is":
				query = query.where(column.isnotnull() if value == "set" else column.isnull())
			else:
				raise ValidationError(field, f"unsupported filter operator {op!r}")
		return query


class FrappeQueue:
	"""RQ through frappe.enqueue: site-namespaced message ids, run by `bench worker`."""

	def queue_for(self, priority: str) -> str:
		queue = PRIORITY_QUEUES[priority]
		return queue if queue in get_queues_timeout() else STOCK_QUEUES[priority]

	def enqueue(self, job_id: str, queue_job_id: str, priority: str, timeout: int) -> None:
		frappe.enqueue(
			RUN_JOB,
			queue=self.queue_for(priority),
			timeout=(timeout or 0) + BACKSTOP_SECONDS,
			job_id=queue_job_id,
			enqueue_after_commit=in_open_transaction(),
			background_job=job_id,
			message_id=queue_job_id,
		)

	def is_waiting(self, queue_job_id: str) -> bool:
		return message_waiting(get_redis_conn(), create_job_id(queue_job_id))

	def stop(self, queue_job_id: str) -> None:
		try:
			send_stop_job_command(get_redis_conn(), create_job_id(queue_job_id))
		except (NoSuchJobError, InvalidJobOperation):
			pass  # not running anywhere: nothing to stop


class FrappeEvents:
	"""Socket.IO through Frappe: to the job's document room and its owner, never the whole site."""

	def publish(self, event: str, payload: dict) -> None:
		name = EVENTS.get(event, f"dartwing_{event}")
		# A status change is news only once committed; progress is saved apart, so it goes now.
		after_commit = event != "job_progress" and in_open_transaction()
		job_id = payload["job_id"]
		messages = [(name, payload, get_doc_room(JOB, job_id))]
		if payload.get("owner_user"):
			messages.append((name, payload, get_user_room(payload["owner_user"])))
		if event == "job_status_changed":
			messages += list_update_messages(JOB, job_id, payload.get("organization"))
		emit(messages, after_commit)

	def subscribe(self, job_id=None, organization=None):
		raise NotImplementedError("on Frappe, watch jobs in the desk: events arrive over Socket.IO")


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


AUDIENCE_SECONDS = 30


def audience(organization: str) -> list[str]:
	"""Enabled users who may see `organization`'s jobs: the admins and the users its User
	Permissions name. Cached for AUDIENCE_SECONDS: a user given access sees live list updates
	at most that much later (the list itself is read with permissions at once)."""
	key = f"dartwing:audience:{organization}"
	memo = _audience_memo.get((frappe.local.site, organization))
	if memo is not None and memo[0] > time.monotonic():
		return memo[1]  # a job's two transitions, a worker's next jobs: one Redis read
	users = frappe.cache.get_value(key)
	if users is None:
		admins = frappe.get_all(
			"Has Role", filters={"role": ["in", ADMIN_ROLES], "parenttype": "User"}, pluck="parent"
		)
		members = frappe.get_all(
			"User Permission",
			filters={"allow": "Organization", "for_value": organization},
			pluck="user",
		)
		candidates = {"Administrator", *admins, *members}
		users = sorted(
			frappe.get_all("User", filters={"name": ["in", candidates], "enabled": 1}, pluck="name")
		)
		frappe.cache.set_value(key, users, expires_in_sec=AUDIENCE_SECONDS)
	_audience_memo[frappe.local.site, organization] = (time.monotonic() + AUDIENCE_MEMO_SECONDS, users)
	return users


# Per process, on top of the cache: adds at most this much to AUDIENCE_SECONDS.
AUDIENCE_MEMO_SECONDS = 5
_audience_memo: dict[tuple[str, str], tuple[float, list[str]]] = {}


def list_update_messages(doctype: str, name: str, organization: str | None) -> list[tuple]:
	"""The list view re-reads its page on `list_update`. Frappe v15 always sends that event to
	the doctype's room, which every user with the role joins, whatever their organization; here
	it goes to the user room of each user who may see the document instead."""
	message = {"doctype": doctype, "name": name}
	users = audience(organization) if organization else ["Administrator"]
	return [("list_update", message, get_user_room(user)) for user in users]


def emit(messages: list[tuple], after_commit: bool) -> None:
	"""Publish (event, message, room) triples as Frappe's emit_via_redis does, in one Redis round
	trip; after the current transaction commits when `after_commit`."""
	if after_commit:
		frappe.db.after_commit.add(functools.partial(_publish, messages, frappe.local.site))
	else:
		_publish(messages, frappe.local.site)


def _publish(messages: list[tuple], site: str) -> None:
	with contextlib.suppress(redis.exceptions.ConnectionError):
		pipe = get_redis_connection_without_auth().pipeline(transaction=False)
		for event, message, room in messages:
			payload = {"event": event, "message": message, "room": room, "namespace": site}
			# frappe.as_json without its indentation: the same JSON for socketio.js, cheaper.
			pipe.publish("events", json.dumps(payload, separators=(",", ":"), default=json_handler))
		pipe.execute()


class FrappeAccess:
	"""Jobs run as the user who submitted them, and only while that user may still reach the
	job's organization."""

	claim_links = {"owner_user": ("User", ["enabled"])}  # no query of its own per job

	def check_run(self, job: dict, linked: dict) -> None:
		user = job["owner_user"]
		if not (linked.get("owner_user") or {}).get("enabled"):
			raise PermissionDenied(f"user {user} is disabled or deleted")
		if not frappe.has_permission(JOB, "read", user=user):
			raise PermissionDenied(f"{user} no longer has a role that may use background jobs")
		if not can_access_organization(job["organization"], user):
			raise PermissionDenied(f"{user} may no longer access organization {job['organization']}")

	@contextmanager
	def run_as(self, user: str) -> Iterator[None]:
		"""The handler runs as `user`, in a transaction of its own: a failed attempt's writes are
		rolled back before it is settled, a successful one's commit with its Completed transition.
		A handler that commits itself (frappe.db.commit) keeps what it committed even if it later
		fails, and redoes it on retry: key such work on ctx.idempotency_key."""
		previous = frappe.session.user
		frappe.set_user(user)
		frappe.local.dartwing_in_handler = True
		try:
			yield
		except BaseException:
			try:
				frappe.db.rollback()
			except Exception:  # a dropped connection: keep the handler's error, not this one
				logger.warning("Rolling back a failed attempt failed", exc_info=True)
			raise
		finally:
			frappe.local.dartwing_in_handler = False
			frappe.set_user(previous)


def load_handlers() -> None:
	"""Import every module an installed app lists under the `dartwing_job_handlers` hook, and
	those in DARTWING_IMPORTS (comma-separated), as the standalone commands do."""
	import_handler_modules([*frappe.get_hooks(HANDLER_HOOK), *env_imports()])


def site_settings() -> Settings:
	"""Settings from DARTWING_* variables, overridden by the site config key `dartwing`."""
	overrides = frappe.conf.get("dartwing") or {}
	if not isinstance(overrides, dict):
		raise ValidationError("dartwing", "the site config's dartwing key must be an object of settings")
	site_defaults = {
		"queue_prefix": f"dartwing:{frappe.local.site}",
		"submit_limit_per_user": frappe.conf.get("dartwing_submit_rate_limit") or 300,
		"submit_limit_per_organization": 1200,
	}
	try:
		return Settings.from_env(**{**site_defaults, **overrides})
	except ValueError as exc:
		raise ValidationError("dartwing", f"site config: {exc}") from None


def get_engine() -> Engine:
	"""The engine of the current site, built once per process and site."""
	site = frappe.local.site
	if site not in _engines:
		load_handlers()
		from frappe.utils import get_system_timezone

		zone = ZoneInfo(get_system_timezone())
		_engines[site] = Engine(
			store=FrappeStore(frappe.local.site, frappe.local.sites_path),
			queue=FrappeQueue(),
			events=FrappeEvents(),
			settings=site_settings(),
			# now_datetime() needs frappe.local, which the heartbeat thread lacks: the same wall
			# clock (the site's zone, naive, as Frappe stores datetimes), readable from any thread.
			clock=lambda: datetime.now(zone).replace(tzinfo=None),
			lock_client=get_redis_conn(),
			access=FrappeAccess(),
			tz=zone,
		)
	return _engines[site]


_engines: dict[str, Engine] = {}


# -- entry points named by hooks.py and by queue messages ------------------------------------


def read_committed() -> None:
	"""Run this session at READ COMMITTED, as the standalone store does: a checkpoint must see a
	cancel committed after the job started, which REPEATABLE READ (MariaDB's default) hides.
	It takes effect from the next transaction: the claim's own commit starts it, before the
	handler runs (the claim compares and sets, so an older snapshot cannot mislead it)."""
	if getattr(frappe.db, "_dartwing_read_committed", False):
		return  # this connection is set already (a dartwing-worker child keeps it across jobs)
	if frappe.db.db_type == "mariadb" and not in_open_transaction():
		frappe.db.sql("set session transaction isolation level read committed")
		frappe.db._dartwing_read_committed = True


def run_job(background_job: str, message_id: str) -> str:
	"""What every queue message runs, inside frappe's execute_job (site connected)."""
	from ..executor import execute

	read_committed()
	return execute(get_engine(), background_job, message_id)


def scheduler_tick() -> dict:
	"""Per-minute cron: due retries, pending releases, orphan rescue, lost messages, hard stops."""
	from ..scheduler import tick

	read_committed()
	return tick(get_engine())


def purge_daily() -> int:
	"""Daily cron. Frappe's scheduler already runs it once a day; the standalone scheduler's
	24-hour lock would skip a day whenever today's run starts earlier than yesterday's."""
	from ..cleanup import purge

	read_committed()
	return purge(get_engine())
