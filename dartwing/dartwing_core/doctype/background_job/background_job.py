# Copyright (c) 2026, Dartwing and contributors
# License: MIT. See license.txt

import frappe
from frappe import _
from frappe.utils import get_datetime

from dartwing.dartwing_core.api.errors import throw
from dartwing.dartwing_core.background_jobs import schema
from dartwing.dartwing_core.background_jobs.backends.frappe_backend import get_engine
from dartwing.dartwing_core.background_jobs.errors import DartwingError
from dartwing.dartwing_core.background_jobs.states import TERMINAL
from dartwing.dartwing_core.background_jobs.transitions import JOB
from dartwing.dartwing_core.guards import TenantDocument


class BackgroundJob(TenantDocument):
	"""A job's row belongs to the engine: every change is a logged compare-and-set. A document
	inserted from the desk or REST is submitted through the engine (same checks as submit_job);
	saving an existing job is refused, and finished jobs change only through Retry."""

	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		from dartwing.dartwing_core.doctype.background_job_step.background_job_step import BackgroundJobStep

		active_hash: DF.Data | None
		cancel_requested_at: DF.Datetime | None
		canceled_at: DF.Datetime | None
		canceled_by: DF.Data | None
		chain_head: DF.Data | None
		completed_at: DF.Datetime | None
		depends_on: DF.Link | None
		error_message: DF.Code | None
		error_traceback: DF.Code | None
		error_type: DF.Literal["", "Transient", "Permanent"]
		heartbeat_at: DF.Datetime | None
		items_done: DF.Int
		items_failed: DF.Int
		items_skipped: DF.Int
		items_total: DF.Int
		input_parameters: DF.Code | None
		job_hash: DF.Data | None
		job_type: DF.Link
		lease_expires_at: DF.Datetime | None
		max_retries: DF.Int
		next_retry_at: DF.Datetime | None
		organization: DF.Link
		output_reference: DF.Code | None
		owner_user: DF.Link | None
		priority: DF.Literal["Low", "Normal", "High", "Critical"]
		progress: DF.Percent
		progress_message: DF.Code | None
		queue_job_id: DF.Data | None
		queued_at: DF.Datetime | None
		result: DF.Code | None
		retry_count: DF.Int
		run_at: DF.Datetime | None
		started_at: DF.Datetime | None
		status: DF.Literal[
			"Scheduled",
			"Pending",
			"Queued",
			"Running",
			"Completed",
			"Failed",
			"Timed Out",
			"Canceled",
			"Dead Letter",
		]
		steps: DF.Table[BackgroundJobStep]
		timeout_seconds: DF.Int
		traceparent: DF.Data | None
		transition_count: DF.Int
		triggered_by: DF.Data | None
		worker_name: DF.Data | None
	# end: auto-generated types

	def validate(self) -> None:
		if self.is_new():
			return
		before = self.get_doc_before_save()
		if before is None:
			return
		changed = [f for f in _DATA_FIELDS if str(self.get(f) or "") != str(before.get(f) or "")]
		if not changed:
			return
		if before.status in TERMINAL:
			frappe.throw(
				_("Job {0} is {1}; a finished job changes only through Retry.").format(
					self.name, before.status
				),
				title=_("Job is finished"),
			)
		frappe.throw(
			_("Background Jobs change only through their actions (Cancel, Retry); cannot edit {0}.").format(
				", ".join(self.meta.get_label(f) for f in changed)
			),
			title=_("Not editable"),
		)

	def db_insert(self, *args, **kwargs) -> None:
		"""Submit through the engine: validation, duplicate and quota checks, the first log row
		and the queue message, exactly as the API does."""
		from dartwing.dartwing_core.api.jobs import submit_for_session_user

		try:
			job = submit_for_session_user(
				self.job_type,
				self.organization,
				self.input_parameters or None,
				self.priority,
				self.depends_on,
				"desk",
				# The desk's naive wall time, in the site's zone as the engine reads a naive datetime.
				run_at=get_datetime(self.run_at) if self.run_at else None,
			)
		except DartwingError as exc:
			throw(exc)  # the API's statuses: REST inserts answer 400/409/429 like submit_job
		self.name = job["job_id"]
		self.update(get_engine().store.get(JOB, self.name))

	def on_trash(self) -> None:
		if self.status not in TERMINAL:
			frappe.throw(
				_("Job {0} is {1}; cancel it before deleting it.").format(self.name, self.status),
				title=_("Job is unfinished"),
			)
		frappe.db.delete("Job Execution Log", {"background_job": self.name})
		frappe.db.delete("Background Job Item", {"background_job": self.name})


_DATA_FIELDS = tuple(f["fieldname"] for f in schema.data_fields(JOB))


def on_doctype_update() -> None:
	"""Composite indexes declared in the doctype JSON under `dartwing_indexes`."""
	add_composite_indexes(JOB)


def add_composite_indexes(doctype: str) -> None:
	"""The doctype JSON's indexes (`bench migrate` runs this), and the ones they replaced dropped."""
	for fields in schema.composite_indexes(doctype):
		frappe.db.add_index(doctype, fields, index_name=schema.index_name("dw", fields, ""))
	for fields in schema.unique_indexes(doctype):
		frappe.db.add_unique(doctype, fields, constraint_name=schema.index_name("dw", fields, "unique"))
	for fields in schema.dropped_indexes(doctype):
		name = schema.index_name("dw", fields, "")
		if frappe.db.has_index(f"tab{doctype}", name):
			on_table = "" if frappe.db.db_type == "postgres" else f" ON `tab{doctype}`"
			frappe.db.sql_ddl(f"DROP INDEX `{name}`{on_table}")
