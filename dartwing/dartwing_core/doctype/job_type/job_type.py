# Copyright (c) 2026, Dartwing and contributors
# License: MIT. See license.txt

import frappe
from frappe import _
from frappe.model.document import Document

from dartwing.dartwing_core.background_jobs.backends.frappe_backend import load_handlers
from dartwing.dartwing_core.background_jobs.registry import job_type_problems, registry


class JobType(Document):
	"""A Job Type names a handler registered in code (hook `dartwing_job_handlers`); a stored
	dotted path is never imported, so the handler must be registered to be saved."""

	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		base_delay: DF.Int
		critical_roles: DF.SmallText | None
		deduplication_window: DF.Int
		default_priority: DF.Literal["Low", "Normal", "High", "Critical"]
		default_timeout: DF.Int
		description: DF.SmallText | None
		display_name: DF.Data | None
		handler: DF.Data
		is_enabled: DF.Check
		is_paused: DF.Check
		jitter: DF.Float
		max_delay: DF.Int
		max_retries: DF.Int
		requires_permission: DF.Data | None
		retry_strategy: DF.Literal["exponential", "linear", "fixed"]
		type_name: DF.Data
	# end: auto-generated types

	def validate(self) -> None:
		load_handlers()
		if registry.get(self.handler) is None:
			frappe.throw(
				_(
					"Handler {0} is not registered. Declare it with @job_handler in a module listed under the dartwing_job_handlers hook."
				).format(frappe.bold(self.handler)),
				title=_("Unknown handler"),
			)
		problems = job_type_problems({f: self.get(f) for f in _NUMBERS_AND_CHOICES})
		if problems:
			frappe.throw(
				"<br>".join(f"{frappe.bold(self.meta.get_label(f))}: {p}" for f, p in problems),
				title=_("Invalid Job Type"),
			)
		if self.requires_permission and not frappe.db.exists("Role", self.requires_permission):
			frappe.throw(
				_("Requires Permission must name a Role; {0} is not one").format(
					frappe.bold(self.requires_permission)
				),
				title=_("Invalid Job Type"),
			)


_NUMBERS_AND_CHOICES = (
	"default_priority",
	"retry_strategy",
	"default_timeout",
	"max_retries",
	"base_delay",
	"max_delay",
	"jitter",
	"deduplication_window",
)
