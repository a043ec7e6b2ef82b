"""The engine's Access over Frappe users, roles and User Permissions."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import frappe

from dartwing.dartwing_core.permissions import can_access_organization

from ..errors import PermissionDenied
from ..transitions import JOB

logger = logging.getLogger("dartwing.jobs")


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
