# Copyright (c) 2026, Dartwing and contributors
# License: MIT. See license.txt

import frappe

from dartwing.dartwing_core.api.errors import throw
from dartwing.dartwing_core.background_jobs.backends.frappe_backend import get_engine
from dartwing.dartwing_core.background_jobs.errors import DartwingError, PermissionDenied
from dartwing.dartwing_core.background_jobs.schedules import EDITABLE, SCHEDULE, prepare, unlink_jobs
from dartwing.dartwing_core.doctype.background_job.background_job import add_composite_indexes
from dartwing.dartwing_core.guards import TenantDocument
from dartwing.dartwing_core.permissions import can_access_organization

ENGINE_FIELDS = ("next_run_at", "last_run_at", "last_job", "owner_user")


class JobSchedule(TenantDocument):
	"""Recurring jobs of one job type and organization. Every rule is the engine's
	(`schedules.prepare`, as the API and the CLI use it): a desk or REST save is checked the same
	way, and its next run time is computed there; the scheduler tick creates the jobs."""

	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		cron: DF.Data | None
		enabled: DF.Check
		interval_seconds: DF.Int
		job_type: DF.Link
		last_job: DF.Link | None
		last_run_at: DF.Datetime | None
		misfire_policy: DF.Literal["Run Once", "Skip"]
		next_run_at: DF.Datetime | None
		organization: DF.Link
		overlap_policy: DF.Literal["Skip", "Allow"]
		owner_user: DF.Link | None
		parameters: DF.Code | None
		time_zone: DF.Data
	# end: auto-generated types

	def validate(self) -> None:
		engine = get_engine()
		current = None if self.is_new() else engine.store.get(SCHEDULE, self.name)
		try:
			if self.organization and not can_access_organization(self.organization):
				raise PermissionDenied(f"no access to organization {self.organization!r}")
			row = prepare(
				engine,
				{field: self.get(field) for field in EDITABLE},
				user=frappe.session.user,
				roles=set(frappe.get_roles()),
				current=current,
			)
		except DartwingError as exc:
			throw(exc)  # the API's statuses: a REST insert answers 400/403 like add_schedule
		# The engine's fields as the database has them now (none for a new schedule): the tick may
		# have moved them since the form was loaded, and no save may set a run time or last job.
		for field in ENGINE_FIELDS:
			self.set(field, current.get(field) if current is not None else None)
		for field in (*EDITABLE, "next_run_at"):
			if field in row:
				self.set(field, row[field])
		if self.is_new():
			self.owner_user = frappe.session.user  # its jobs run as the user who created it

	def on_trash(self) -> None:
		"""A desk or REST delete does what the API's does: the jobs stay, unlinked. Frappe runs
		this before its check for documents linking here, so that check passes."""
		unlink_jobs(get_engine(), self.name)


def on_doctype_update() -> None:
	"""Composite indexes declared in the doctype JSON under `dartwing_indexes`."""
	add_composite_indexes(SCHEDULE)
