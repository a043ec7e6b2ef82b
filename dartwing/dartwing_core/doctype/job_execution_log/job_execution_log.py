# Copyright (c) 2026, Dartwing and contributors
# License: MIT. See license.txt

import frappe
from frappe import _

from dartwing.dartwing_core.doctype.background_job.background_job import add_composite_indexes
from dartwing.dartwing_core.guards import TenantDocument


class JobExecutionLog(TenantDocument):
	"""Append-only, hash-chained history of a job. Rows are written by the engine; they are
	never edited, and deleted only with their job (purge, or deleting a finished job)."""

	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		actor: DF.Data | None
		background_job: DF.Link
		entry_hash: DF.Data | None
		from_status: DF.Data | None
		message: DF.Code | None
		previous_hash: DF.Data | None
		retry_attempt: DF.Int
		sequence: DF.Int
		timestamp: DF.Datetime | None
		to_status: DF.Data | None
	# end: auto-generated types

	def validate(self) -> None:
		if not self.is_new():
			frappe.throw(_("Job Execution Log rows cannot be changed."), title=_("Append-only"))

	def before_insert(self) -> None:
		frappe.throw(_("Job Execution Log rows are written by the job engine only."), title=_("Append-only"))

	def on_trash(self) -> None:
		frappe.throw(
			_("Job Execution Log rows are removed only with their job (purge or Delete on the job)."),
			title=_("Append-only"),
		)

	@staticmethod
	def clear_old_logs(days: int = 30) -> None:
		"""Log Settings' hook: purge finished jobs older than `days` together with their logs,
		so a job's chain is never left with a gap."""
		from dartwing.dartwing_core.background_jobs.backends.frappe_backend import get_engine
		from dartwing.dartwing_core.background_jobs.cleanup import purge

		purge(get_engine(), older_than_days=days)


def on_doctype_update() -> None:
	add_composite_indexes("Job Execution Log")
