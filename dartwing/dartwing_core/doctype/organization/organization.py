# Copyright (c) 2026, Dartwing and contributors
# License: MIT. See license.txt

import frappe
from frappe import _

from dartwing.dartwing_core.guards import TenantDocument


class Organization(TenantDocument):
	"""The tenant. Users reach organizations through User Permissions; jobs of a Suspended
	organization wait as Pending until it is Active again."""

	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		max_in_flight_jobs: DF.Int
		max_queued_jobs: DF.Int
		organization_name: DF.Data
		status: DF.Literal["Active", "Suspended"]
	# end: auto-generated types

	def validate(self) -> None:
		if (self.max_queued_jobs or 0) < 0:
			frappe.throw(
				_("Max Queued Jobs must be zero (no limit) or more, not {0}").format(self.max_queued_jobs),
				title=_("Invalid Organization"),
			)
