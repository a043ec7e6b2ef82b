# Copyright (c) 2026, Dartwing and contributors
# License: MIT. See license.txt

import frappe
from frappe import _

from dartwing.dartwing_core.guards import TenantDocument


class Organization(TenantDocument):
	"""The tenant. Users reach organizations through User Permissions; jobs of a Suspended
	organization wait as Pending until it is Active again."""

	def validate(self) -> None:
		if (self.max_queued_jobs or 0) < 0:
			frappe.throw(
				_("Max Queued Jobs must be zero (no limit) or more, not {0}").format(self.max_queued_jobs),
				title=_("Invalid Organization"),
			)
