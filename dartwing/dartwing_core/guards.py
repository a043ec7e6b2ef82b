"""Tenancy on Frappe's own endpoints, for the tenant doctypes (Organization, Background Job, a job's
own rows: Job Execution Log, Background Job Step (a child table) and Background Job Item, and Job
Schedule).

`permission_query_conditions` and `has_permission` (permissions.py) hold wherever Frappe asks them.
Some v15 endpoints do not ask: they load a document before checking, count or search with
permissions off, or ignore the check's answer. Each is closed here, for these doctypes only,
and docs/architecture.md ("Tenancy") lists what closes what:

- `TenantDocument.load_from_db`: a document of an organization the user may not reach does not
  exist for them, the same 404 as an absent one, on every path that loads it (REST, getdoc,
  client.get, upload_file, share, assign, the realtime doc room, delete).
- `guard_links`: in any doctype, a link (or a child row's link) to such a document fails
  Frappe's link check as "Could not find", as a link to an absent one does.
- whitelisted overrides (hooks.py `override_whitelisted_methods`): search without
  `ignore_user_permissions`, counts and lookups by filter through the permission-checked list,
  bulk delete skipping unreachable names as it skips absent ones.
- doc_events: no File, Comment (likes included), Communication, ToDo, Event, Document Follow,
  Tag Link or DocShare on a document the user may not reach, and no share to a user outside its
  organization.
"""

import functools
import json
import sys
from typing import NoReturn
from urllib.parse import unquote

import frappe
import frappe.client
import frappe.desk.search
from frappe import _
from frappe.core.doctype.communication import email
from frappe.model.base_document import BaseDocument
from frappe.model.document import Document
from frappe.utils import cint, get_safe_filters

from dartwing.dartwing_core.background_jobs.backends.frappe_events import emit, list_update_messages
from dartwing.dartwing_core.background_jobs.transitions import ITEM, JOB, LOG, STEP
from dartwing.dartwing_core.permissions import (
	JOB_FIELD,
	ORGANIZATION,
	SCHEDULE,
	is_admin,
	may_reach,
	organization_of,
	organizations_sql,
)

# A job's own rows: their job's organization is theirs (permissions.organization_of).
JOB_ROWS = (LOG, STEP, ITEM)
TENANT_DOCTYPES = frozenset({ORGANIZATION, JOB, SCHEDULE, *JOB_ROWS})
# Child tables among them, and the doctype Frappe lists their rows for: a list of them names it.
PARENT_DOCTYPE = {STEP: JOB}
_TENANT_DOCTYPES_FOLDED = frozenset(d.lower() for d in TENANT_DOCTYPES)


def _is_tenant_doctype(doctype) -> bool:
	"""Also in another case or with spaces around it, which a case-insensitive server may resolve
	to the same table."""
	return isinstance(doctype, str) and doctype.strip().lower() in _TENANT_DOCTYPES_FOLDED


def not_found(doctype: str, name) -> NoReturn:
	"""Frappe's own answer for an absent document, word for word."""
	frappe.throw(_("{0} {1} not found").format(_(doctype), name), frappe.DoesNotExistError)


def _link_fields(meta) -> list:
	"""The fields Frappe's link check reads, in its order (both lists are cached on the meta)."""
	return meta.get_link_fields() + meta.get_dynamic_link_fields()


def unreachable_links(doc, invalid: list) -> list[tuple]:
	"""Links of `doc` (a document or one child row) to tenant documents the session user may not
	reach, which Frappe's own check let through because they exist: in Frappe's words. Runs in
	every document's validation: it costs nothing until a link names a tenant document."""
	known = {(fieldname, value) for fieldname, value, _ in invalid}  # absent ones, reported already
	found = []
	for df in _link_fields(doc.meta):
		if df.fieldtype == "Link" and df.options not in TENANT_DOCTYPES:
			continue
		value = doc.get(df.fieldname)
		target = df.options if df.fieldtype == "Link" else doc.get(df.options)
		if target not in TENANT_DOCTYPES or not value or (df.fieldname, value) in known:
			continue
		if is_admin():
			return []
		if not (isinstance(value, str) and _exists_and_reachable(target, value)):
			found.append((df.fieldname, value, link_message(doc, df, value)))
	return found


def guard_links() -> None:
	"""Frappe checks every document's links (Link and Dynamic Link fields, child rows included)
	before its permissions and hooks, in every doctype: Reminder, Auto Repeat, Contact's and
	Address's links, ToDo, Comment, Event participants, any app's own. A link to a tenant
	document elsewhere must fail right there, as "Could not find", word for word as for an
	absent one, or the answer (417 against a later 403/404) tells the two apart. So the check is
	extended once per process, for all doctypes; hooks.py runs this before each request and
	job (idempotent), and this module runs it when it loads."""
	if getattr(BaseDocument.get_invalid_links, "dartwing_guard", False):
		return
	frappe_check = BaseDocument.get_invalid_links

	@functools.wraps(frappe_check)
	def get_invalid_links(self, is_submittable=False):
		invalid, cancelled = frappe_check(self, is_submittable)
		unreachable = unreachable_links(self, invalid)
		if unreachable:
			# In Frappe's own field order, or the message's order would tell the two kinds apart.
			order = {df.fieldname: n for n, df in enumerate(_link_fields(self.meta))}
			invalid = sorted(invalid + unreachable, key=lambda link: order.get(link[0], len(order)))
		return invalid, cancelled

	get_invalid_links.dartwing_guard = True
	BaseDocument.get_invalid_links = get_invalid_links


class TenantDocument(Document):
	"""Base of the tenant doctypes' controllers."""

	def load_from_db(self) -> None:
		# Absent and unreachable raise from the same line, so even a traceback (v15 shows them
		# on error pages by default) cannot tell them apart.
		if isinstance(self.name, str) and not _exists_and_reachable(self.doctype, self.name):
			if _loaded_by_delete_doc():
				raise frappe.DoesNotExistError  # frappe.delete_doc's own (bare) answer for an absent one
			not_found(self.doctype, self.name)
		super().load_from_db()

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
		emit(
			list_update_messages(self.doctype, self.name, organization_of(self.doctype, self)),
			after_commit=True,
		)


def _exists_and_reachable(doctype: str, name: str, user: str | None = None) -> bool:
	if doctype == ORGANIZATION:
		row = frappe.db.get_value(doctype, name, ["name"], as_dict=True)
	elif doctype in (JOB, SCHEDULE):
		row = frappe.db.get_value(doctype, name, ["name", "organization"], as_dict=True)
	else:  # a job's own row: a step names its job `parent`, the others `background_job`
		row = frappe.db.get_value(
			doctype, name, ["name", JOB_FIELD.get(doctype, "background_job")], as_dict=True
		)
	if row is None:  # gone (purged): only admins may still tidy what pointed at it
		return is_admin(user)
	return may_reach(doctype, row, user)


def require_reach(doctype: str, name) -> None:
	"""404, as for an absent document, unless `name` exists and the session user may reach it
	(admins reach what is gone too, so they can tidy rows that pointed at a purged job)."""
	if not isinstance(name, str) or not name or not _exists_and_reachable(doctype, name):
		not_found(doctype, name)


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
	rows = _get_list(
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
		filters = frappe.parse_json(filters)
		name = _first_visible(doctype, filters) or not_found(doctype, filters)
		filters = None
	return frappe.client.get(doctype, name, filters, parent)


@frappe.whitelist()
def validate_link(doctype: str, docname: str, fields=None):
	"""v15 answers whether any name exists; for tenant doctypes only names the user may reach."""
	if doctype in TENANT_DOCTYPES and isinstance(docname, str) and docname:
		if not _first_visible(doctype, {"name": docname}):
			return frappe._dict()
	return frappe.client.validate_link(doctype, docname, fields)


@frappe.whitelist()
def dashboard_chart(
	chart_name=None,
	chart=None,
	no_cache=None,
	filters=None,
	from_date=None,
	to_date=None,
	timespan=None,
	time_interval=None,
	heatmap_year=None,
	refresh=None,
):
	"""v15 computes an unsaved chart (sums of any SQL expression included) with no permission
	check: tenant doctypes chart only for the users who see every organization."""
	from frappe.desk.doctype.dashboard_chart import dashboard_chart as charts

	source = frappe.parse_json(chart) if chart and not chart_name else {}
	if chart_name:
		source = frappe.db.get_value("Dashboard Chart", chart_name, ["document_type"], as_dict=True) or {}
	document_type = source.get("document_type") if isinstance(source, dict) else None
	if document_type is not None and not isinstance(document_type, str):
		frappe.throw(_("chart.document_type must be a DocType name"), frappe.ValidationError)
	if _is_tenant_doctype(document_type) and not is_admin():
		frappe.throw(_("Charts of {0} are for admins").format(_(document_type)), frappe.PermissionError)
	return charts.get(  # its cache_source wrapper reads keywords only
		chart_name=chart_name,
		chart=chart,
		no_cache=no_cache,
		filters=filters,
		from_date=from_date,
		to_date=to_date,
		timespan=timespan,
		time_interval=time_interval,
		heatmap_year=heatmap_year,
		refresh=refresh,
	)


@frappe.whitelist()
def get_group_by_count(doctype: str, current_filters: str, field: str) -> list[dict]:
	"""v15 counts the sidebar's "assigned to" groups with no permission check on the rows (the
	other fields go through get_list): for tenant doctypes, only over the rows the user may list."""
	from frappe.desk import listview

	if field == "assigned_to" and doctype in TENANT_DOCTYPES and not is_admin():
		visible = _get_list(
			doctype, filters=frappe.parse_json(current_filters), pluck="name", limit_page_length=0
		)
		current_filters = frappe.as_json([[doctype, "name", "in", visible or [""]]])
	return listview.get_group_by_count(doctype, current_filters, field)


@frappe.whitelist()
def get_next(doctype, value, prev, filters=None, sort_order="desc", sort_field="modified"):
	"""v15 reads the given row's sort value with no permission check, then compares."""
	from frappe.desk.form import utils

	if doctype in TENANT_DOCTYPES and not _first_visible(doctype, {"name": value}):
		frappe.msgprint(_("No further records"))
		return None
	return utils.get_next(doctype, value, prev, filters, sort_order, sort_field)


@frappe.whitelist()
def assign_to(args=None):
	"""v15 checks permission per assignee, so an empty list skips it and lists the assignees."""
	from frappe.desk.form import assign_to as assignments

	args = args or frappe.local.form_dict
	if isinstance(args, str):
		args = frappe.parse_json(args)
	if args.get("doctype") in TENANT_DOCTYPES:
		require_reach(args["doctype"], args.get("name"))
	return assignments.add(args)


@frappe.whitelist()
def get_follow_users(doctype, doc_name):
	from frappe.desk.form import document_follow

	if doctype in TENANT_DOCTYPES:
		require_reach(doctype, doc_name)
	return document_follow.get_follow_users(doctype, doc_name)


@frappe.whitelist()
def get_tagged_docs(doctype, tag):
	from frappe.desk.doctype.tag import tag as tags

	if doctype not in TENANT_DOCTYPES:
		return tags.get_tagged_docs(doctype, tag)
	return _get_list(doctype, filters=[[doctype, "_user_tags", "like", tag]], fields=["name"], as_list=True)


@frappe.whitelist()
def relink(name, reference_doctype=None, reference_name=None):
	"""v15 moves a Communication with raw SQL and no check at all."""
	import frappe.email

	frappe.get_doc("Communication", name).check_permission("write")
	current = frappe.db.get_value("Communication", name, ["reference_doctype", "reference_name"])
	for doctype, docname in (current or (None, None), (reference_doctype, reference_name)):
		if doctype in TENANT_DOCTYPES and docname:
			require_reach(doctype, docname)
	return frappe.email.relink(name, reference_doctype, reference_name)


@frappe.whitelist()
def delete_items():
	"""The list's bulk delete skips absent names without a word: names the user may not reach
	are skipped the same way, so which ones exist elsewhere stays unsaid."""
	import frappe.desk.reportview

	doctype = frappe.form_dict.get("doctype")
	if doctype in TENANT_DOCTYPES:
		items = json.loads(frappe.form_dict.get("items") or "[]")
		reachable = [name for name in items if isinstance(name, str) and _exists_and_reachable(doctype, name)]
		frappe.form_dict["items"] = json.dumps(reachable)
	return frappe.desk.reportview.delete_items()


def _loaded_by_delete_doc() -> bool:
	"""True when frappe.delete_doc (ignore_missing off: the REST DELETE, frappe.client.delete)
	loads the document. It answers an absent document with a bare DoesNotExistError after its
	own existence check, so an unreachable one must get the same, not Frappe's "not found"."""
	import frappe.model.delete_doc

	frame, code = sys._getframe(1), frappe.model.delete_doc.delete_doc.__code__
	for _depth in range(10):  # load_from_db < Document.__init__ < get_doc < frappe.get_doc < delete_doc
		if frame is None:
			return False
		if frame.f_code is code:
			return not frame.f_locals.get("ignore_missing", True)
		frame = frame.f_back
	return False


def _first_visible(doctype: str, filters) -> str | None:
	"""The first row matching `filters` among those the user may list."""
	found = _get_list(doctype, filters=filters, pluck="name", limit=1)
	return found[0] if found else None


def _get_list(doctype: str, **kwargs) -> list:
	"""frappe.get_list of a tenant doctype, with its permission query condition. A child table's
	rows (steps) are listed as Frappe lists them, for a reader of their parent doctype: without
	it, Frappe refuses everyone but Administrator."""
	if doctype in PARENT_DOCTYPE:
		kwargs["parent_doctype"] = PARENT_DOCTYPE[doctype]
	return frappe.get_list(doctype, **kwargs)


# -- doc_events ---------------------------------------------------------------------------------


# Documents of other doctypes that point at a tenant document: (doctype field, name field).
REFERENCES = {
	"File": ("attached_to_doctype", "attached_to_name"),
	"Comment": ("reference_doctype", "reference_name"),
	"Communication": ("reference_doctype", "reference_name"),
	"ToDo": ("reference_type", "reference_name"),
	"Document Follow": ("ref_doctype", "ref_docname"),
	"Tag Link": ("document_type", "document_name"),
}


# Child tables whose rows point at a tenant document: (table field, doctype field, name field).
# An Event's participant puts the event in the document's timeline, through a Communication link.
ROW_REFERENCES = {
	"Communication": ("timeline_links", "link_doctype", "link_name"),
	"Event": ("event_participants", "reference_doctype", "reference_docname"),
}


def guard_reference(doc, method=None) -> None:
	"""validate of a File, Comment (likes), Communication, ToDo (assignments), Document Follow,
	Tag Link or Event: it may point at a tenant document only if the user may reach it (links
	fail earlier, in guard_links; this also covers a File's plain-text target and saves that
	skip link checks), and an existing one may not be moved away from one the user may not
	reach (re-pointing a private file at one's own document would open its download)."""
	targets = []
	if doc.doctype in REFERENCES:
		type_field, name_field = REFERENCES[doc.doctype]
		targets.append((doc.get(type_field), doc.get(name_field)))
		if not doc.is_new():
			stored = frappe.db.get_value(doc.doctype, doc.name, [type_field, name_field])
			targets.append(tuple(stored or (None, None)))
	if doc.doctype in ROW_REFERENCES:
		table_field, type_field, name_field = ROW_REFERENCES[doc.doctype]
		targets += [(row.get(type_field), row.get(name_field)) for row in doc.get(table_field) or []]
	for doctype, name in targets:
		if doctype in TENANT_DOCTYPES and name:
			require_reach(doctype, name)
	if doc.doctype == "File":
		_guard_file(doc)


def link_message(doc, df, value) -> str:
	"""How Frappe's link validation names one link it could not find (get_invalid_links)."""
	label = _(df.label, context=df.parent)
	return f"{_('Row')} #{doc.idx}: {label}: {value}" if doc.get("parentfield") else f"{label}: {value}"


def private_tenant_board(doc, method=None) -> None:
	"""validate of a Kanban Board: one over a tenant doctype is private to its creator. Its
	columns keep the ids of the cards moved on it; a public board would show them to everyone."""
	if doc.reference_doctype in TENANT_DOCTYPES:
		doc.private = 1


def _guard_file(doc) -> None:
	"""A tenant document's files are private."""
	if doc.attached_to_doctype in TENANT_DOCTYPES and not cint(doc.is_private):
		# Frappe has written the content by now (File.before_insert): refuse rather than flip.
		frappe.throw(
			_("Files attached to {0} must be private").format(_(doc.attached_to_doctype)),
			title=_("Private files only"),
		)


def _require_readable_files(attachments) -> None:
	"""Frappe copies the Files it is given by name with ignore_permissions (add_attachments, an
	e-mail's attachments), past the create permission that checks copies: only Files the user
	may read, with one answer for a name that is not there."""
	if isinstance(attachments, str):
		try:
			attachments = json.loads(attachments)
		except ValueError:
			return  # Frappe's own code refuses it
	for item in attachments if isinstance(attachments, list) else []:
		if not isinstance(item, str):
			continue  # new content (an e-mail's printed attachment), not a copy
		readable = frappe.db.exists("File", item) and frappe.has_permission(
			"File", "read", doc=frappe.get_doc("File", item)
		)
		if not readable:
			frappe.throw(_("No permission to attach this file"), frappe.PermissionError)


@frappe.whitelist()
def add_attachments(doctype, name, attachments):
	from frappe.utils.file_manager import add_attachments as attach

	_require_readable_files(attachments)
	return attach(doctype, name, attachments)


@frappe.whitelist()
@functools.wraps(email.make)
def email_make(*args, **kwargs):
	"""frappe.core.doctype.communication.email.make, with its attachments checked first."""
	_require_readable_files(kwargs.get("attachments"))
	return email.make(*args, **kwargs)


def _copies_unreadable_private_file(doc, user: str | None) -> bool:
	"""A new File naming a private file by URL (an upload by URL, add_attachments) would let its
	owner download that file: only a user who may already read a File of it may make one. Asked
	at the create permission, before Frappe reads the file, so a guessed URL gets one answer
	whether or not such a file exists, and it names nothing."""
	url = unquote(doc.get("file_url") or "").strip()
	uploaded = bool(getattr(doc, "content", None))  # new content, not a copy: its own new file
	if uploaded or not (doc.is_new() and url.lower().startswith("/private/")) or is_admin(user):
		return False
	# Frappe adds each refused check's log (naming the File) to the message of the refusal this
	# hook is part of, and the documents those checks load may add messages of their own: keep
	# both out of the answer.
	# (Nested checks also replace and drop Frappe's log list: put the caller's own back.)
	logs = frappe.flags.get("has_permission_check_logs")
	kept = list(logs) if logs is not None else None
	messages = len(frappe.local.message_log)
	try:
		for name in frappe.get_all("File", filters={"file_url": url}, pluck="name"):
			if frappe.has_permission("File", "read", doc=frappe.get_doc("File", name), user=user):
				return False
		return True
	finally:
		if logs is not None:
			logs[:] = kept
			frappe.flags["has_permission_check_logs"] = logs
		del frappe.local.message_log[messages:]


def reference_query(user: str | None = None, doctype: str = "File") -> str:
	"""Query condition for File and Tag Link (Frappe passes the doctype): rows pointing at a
	tenant document only where it is reachable. For File, Frappe ANDs it onto its own `public
	OR own-unattached OR attached-to-readable`, which binds to the last term: exactly the
	attached files."""
	type_field, name_field = REFERENCES[doctype]
	table = f"`tab{doctype}`"
	return _unreachable_excluded(f"{table}.`{type_field}`", f"{table}.`{name_field}`", user)


def reference_permission(doc, ptype=None, user=None, debug=False) -> bool | None:
	"""has_permission of File and Tag Link: no for one pointing (as stored: an unsaved change
	does not count) at a tenant document the user may not reach, or for a new File copying a
	private file the user may not read; otherwise Frappe's own rule decides (None)."""
	if doc.doctype == "File" and ptype == "create" and _copies_unreadable_private_file(doc, user):
		return False
	type_field, name_field = REFERENCES[doc.doctype]
	doctype, name = doc.get(type_field), doc.get(name_field)
	if not doc.is_new():
		doctype, name = frappe.db.get_value(doc.doctype, doc.name, [type_field, name_field]) or (
			doctype,
			name,
		)
	if doctype in TENANT_DOCTYPES and name:
		return None if _exists_and_reachable(doctype, name, user) else False
	return None


def _unreachable_excluded(type_column: str, name_column: str, user: str | None) -> str:
	orgs = organizations_sql(user)
	if orgs is None:
		return ""
	jobs = f"select `name` from `tabBackground Job` where `organization` in ({orgs})"
	# Each tenant doctype, and the names of its rows the user may reach.
	reachable = {
		ORGANIZATION: orgs,
		JOB: jobs,
		SCHEDULE: f"select `name` from `tab{SCHEDULE}` where `organization` in ({orgs})",
		**{
			doctype: f"select `name` from `tab{doctype}`"
			f" where `{JOB_FIELD.get(doctype, 'background_job')}` in ({jobs})"
			for doctype in JOB_ROWS
		},
	}
	tenant = ", ".join(f"'{doctype}'" for doctype in reachable)
	return (
		f"(ifnull({type_column}, '') not in ({tenant})"
		+ "".join(
			f" or ({type_column} = '{doctype}' and {name_column} in ({names}))"
			for doctype, names in reachable.items()
		)
		+ ")"
	)


# Saved views whose filters name a doctype's values (a job id, an organization, parameter text):
# Frappe lets every desk user read everyone's. Over a tenant doctype, only their owner (and the
# admins) may. {doctype: the field naming the doctype the view is over}
SAVED_VIEWS = {
	"Report": "ref_doctype",
	"List Filter": "reference_doctype",
	"Dashboard Chart": "document_type",
	"Number Card": "document_type",
}


def saved_view_query(user: str | None = None, doctype: str = "Report") -> str:
	"""Query condition for the SAVED_VIEWS doctypes (Frappe passes the doctype)."""
	user = user or frappe.session.user
	if is_admin(user):
		return ""
	table, field = f"`tab{doctype}`", SAVED_VIEWS[doctype]
	tenant = ", ".join(frappe.db.escape(d, percent=False) for d in sorted(TENANT_DOCTYPES))
	owner = frappe.db.escape(user, percent=False)
	return f"(ifnull({table}.`{field}`, '') not in ({tenant}) or {table}.`owner` = {owner})"


def saved_view_permission(doc, ptype=None, user=None, debug=False) -> bool | None:
	"""has_permission of Report, List Filter, Dashboard Chart, Number Card: over a tenant doctype,
	someone else's is not there for a non-admin; otherwise Frappe's own rule decides (None)."""
	user = user or frappe.session.user
	over = doc.get(SAVED_VIEWS[doc.doctype])
	if _is_tenant_doctype(over) and not doc.is_new() and doc.owner != user and not is_admin(user):
		return False
	return None


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


guard_links()
