# Copyright (c) 2026, Dartwing and contributors
# License: MIT. See license.txt

import frappe
from frappe import _

from dartwing.dartwing_core.doctype.background_job.background_job import add_composite_indexes
from dartwing.dartwing_core.guards import TenantDocument


class BackgroundJobItem(TenantDocument):
	"""One item of a job's ctx.each and its outcome. A doctype of its own, not a child table: a job
	may have 100,000 items, which a form must not load. Written by the engine only (in batches);
	deleted with its job."""

	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		attempt: DF.Int
		background_job: DF.Link
		checksum: DF.Data | None
		completed_at: DF.Datetime | None
		error_message: DF.Code | None
		error_type: DF.Data | None
		item_index: DF.Int
		item_key: DF.Data | None
		result: DF.Code | None
		status: DF.Literal["Pending", "Completed", "Failed", "Skipped"]
	# end: auto-generated types

	def validate(self) -> None:
		frappe.throw(_("Background Job Items are written by the job engine only."), title=_("Read-only"))

	def on_trash(self) -> None:
		frappe.throw(_("Background Job Items are removed only with their job."), title=_("Read-only"))


def on_doctype_update() -> None:
	add_composite_indexes("Background Job Item")
