"""Tenancy on Frappe's own endpoints, for the tenant doctypes (Organization, Background Job,
Job Execution Log).

`permission_query_conditions` and `has_permission` (permissions.py) hold wherever Frappe asks them.
Some v15 endpoints do not ask: they load a document before checking, count or search with
permissions off, or ignore the check's answer. Each is closed here, for these doctypes only,
and docs/architecture.md ("Tenancy") lists what closes what:

- `TenantDocument.load_from_db`: a document of an organization the user may not reach does not
  exist for them, the same 404 as an absent one, on every path that loads it (REST, getdoc,
  client.get, upload_file, share, assign, the realtime doc room).
- whitelisted overrides (hooks.py `override_whitelisted_methods`): search without
  `ignore_user_permissions`, counts and lookups by filter through the permission-checked list.
- doc_events: no File, Comment (likes included) or DocShare on a document the user may not reach,
  and no share to a user outside its organization.
"""

from typing import NoReturn

import frappe
import frappe.client
import frappe.desk.search
from frappe import _
from frappe.model.document import Document
from frappe.utils import get_safe_filters

from dartwing.dartwing_core.background_jobs.backends.frappe_backend import (
	can_access_organization,
	is_admin,
	publish_list_update,
)
from dartwing.dartwing_core.background_jobs.transitions import JOB, LOG

ORGANIZATION = "Organization"
TENANT_DOCTYPES = frozenset({ORGANIZATION, JOB, LOG})


def not_found(doctype: str, name) -> NoReturn:
	"""Frappe's own answer for an absent document, word for word."""
	frappe.throw(_("{0} {1} not found").format(_(doctype), name), frappe.DoesNotExistError)


def organization_of(doctype: str, row) -> str | None:
	"""The organization a tenant document belongs to (a log row: its job's)."""
	if doctype == ORGANIZATION:
		return row.get("name")
	if doctype == JOB:
		return row.get("organization")
	return frappe.db.get_value(JOB, row.get("background_job"), "organization")


def may_reach(doctype: str, row, user: str | None = None) -> bool:
	organization = organization_of(doctype, row)
	return can_access_organization(organization, user) if organization else is_admin(user)


class TenantDocument(Document):
	"""Base of the tenant doctypes' controllers."""

	def load_from_db(self) -> None:
		super().load_from_db()
		if not may_reach(self.doctype, self):
			not_found(self.doctype, self.name)

	def notify_update(self) -> None:
		"""Frappe's version sends `list_update` to every user of the doctype."""
		if frappe.flags.in_patch:
			return
		frappe.publish_realtime(
			"doc_update",
			{"modified": self.modified, "doctype": self.doctype, "name": self.name},
			doctype=self.doctype,
			docname=self.name,
			after_commit=True,
		)
		publish_list_update(self.doctype, self.name, organization_of(self.doctype, self), after_commit=True)


def require_reach(doctype: str, name) -> None:
	"""404 unless `name` exists and the session user may reach it (as a load would)."""
	if not isinstance(name, str) or not name or not frappe.db.exists(doctype, name):
		not_found(doctype, name)
	frappe.get_doc(doctype, name)  # TenantDocument.load_from_db decides


# -- whitelisted overrides ----------------------------------------------------------------------


@frappe.whitelist()
def search_widget(
	doctype: str,
	txt: str,
	query: str | None = None,
	searchfield: str | None = None,
	start: int = 0,
	page_length: int = 10,
	filters: str | dict | list | None = None,
	filter_fields=None,
	as_dict: bool = False,
	reference_doctype: str | None = None,
	ignore_user_permissions: bool = False,
):
	"""v15 turns `ignore_user_permissions` into no permission check at all (hooks included)."""
	return frappe.desk.search.search_widget(
		doctype,
		txt,
		query,
		searchfield,
		start,
		page_length,
		filters,
		filter_fields,
		as_dict,
		reference_doctype,
		ignore_user_permissions=ignore_user_permissions and doctype not in TENANT_DOCTYPES,
	)


@frappe.whitelist()
def search_link(
	doctype: str,
	txt: str,
	query: str | None = None,
	filters: str | dict | list | None = None,
	page_length: int = 10,
	searchfield: str | None = None,
	reference_doctype: str | None = None,
	ignore_user_permissions: bool = False,
):
	return frappe.desk.search.search_link(
		doctype,
		txt,
		query,
		filters,
		page_length,
		searchfield,
		reference_doctype,
		ignore_user_permissions=ignore_user_permissions and doctype not in TENANT_DOCTYPES,
	)


@frappe.whitelist()
def get_count(doctype, filters=None, debug=False, cache=False):
	"""v15 counts with no permission check; tenant doctypes count what the user may list."""
	if doctype not in TENANT_DOCTYPES:
		return frappe.client.get_count(doctype, filters, debug, cache)
	rows = frappe.get_list(
		doctype,
		filters=get_safe_filters(filters),
		fields=[f"count(`tab{doctype}`.`name`) as total_count"],
	)
	return rows[0].total_count if rows else 0


@frappe.whitelist()
def get(doctype, name=None, filters=None, parent=None):
	"""v15 loads the first match of `filters` before it checks permission, so its 403 names a
	match the user may not see; tenant doctypes look the match up in what the user may list."""
	if doctype in TENANT_DOCTYPES and not name and (filters or filters == {}):
		name = _first_visible(doctype, filters)
		filters = None
	return frappe.client.get(doctype, name, filters, parent)


@frappe.whitelist()
def validate_link(doctype: str, docname: str, fields=None):
	"""v15 answers whether any name exists; for tenant doctypes only names the user may reach."""
	if doctype in TENANT_DOCTYPES and isinstance(docname, str) and docname:
		if not frappe.get_list(doctype, filters={"name": docname}, pluck="name", limit=1):
			return frappe._dict()
	return frappe.client.validate_link(doctype, docname, fields)


def _first_visible(doctype: str, filters) -> str:
	filters = frappe.parse_json(filters)
	found = frappe.get_list(doctype, filters=filters, pluck="name", limit=1)
	if not found:
		not_found(doctype, filters)
	return found[0]


# -- doc_events ---------------------------------------------------------------------------------


def guard_attachment(doc, method=None) -> None:
	"""File.validate: a file attaches only to a tenant document the user may reach."""
	if doc.attached_to_doctype in TENANT_DOCTYPES and doc.attached_to_name:
		require_reach(doc.attached_to_doctype, doc.attached_to_name)


def guard_comment(doc, method=None) -> None:
	"""Comment.validate: likes, comments and info lines only on what the user may reach."""
	if doc.reference_doctype in TENANT_DOCTYPES and doc.reference_name:
		require_reach(doc.reference_doctype, doc.reference_name)


def guard_share(doc, method=None) -> None:
	"""DocShare.validate: sharing never crosses organizations. Frappe grants a share even where
	the doctype's has_permission hook says no, so a share to someone outside the organization
	(or to everyone) would hand over the job."""
	if doc.share_doctype not in TENANT_DOCTYPES:
		return
	require_reach(doc.share_doctype, doc.share_name)
	row = frappe.db.get_value(doc.share_doctype, doc.share_name, "*", as_dict=True)
	if doc.everyone or not doc.user or not may_reach(doc.share_doctype, row, doc.user):
		frappe.throw(
			_("{0} can be shared only with users of its organization {1}").format(
				_(doc.share_doctype), organization_of(doc.share_doctype, row)
			),
			frappe.PermissionError,
		)
