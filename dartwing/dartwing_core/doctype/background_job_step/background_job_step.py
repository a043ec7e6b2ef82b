# Copyright (c) 2026, Dartwing and contributors
# License: MIT. See license.txt

from dartwing.dartwing_core.doctype.background_job.background_job import add_composite_indexes
from dartwing.dartwing_core.guards import TenantDocument


class BackgroundJobStep(TenantDocument):
	"""A named step of a job (ctx.step): its outcome and saved result, written by the engine only.
	A child table of Background Job, so the job's form shows its steps; the job's own rule (saves
	of an existing job are refused) keeps the rows as the engine wrote them. Loaded on its own (by
	name: REST, client.get, getdoc), a step of a job the user may not reach is not there: Frappe
	checks a child row against its parent doctype only, not against its parent document."""

	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		attempt: DF.Int
		completed_at: DF.Datetime | None
		duration: DF.Float
		error: DF.Code | None
		parent: DF.Data
		parentfield: DF.Data
		parenttype: DF.Data
		result: DF.Code | None
		started_at: DF.Datetime | None
		status: DF.Literal["Running", "Completed", "Failed"]
		step_name: DF.Data | None
		step_order: DF.Int
		timed_out: DF.Check
	# end: auto-generated types


def on_doctype_update() -> None:
	add_composite_indexes("Background Job Step")
