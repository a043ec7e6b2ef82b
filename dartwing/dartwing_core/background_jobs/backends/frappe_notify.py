"""Frappe's reactions to a document change, for the engine's status transitions, which the store
writes without `Document.save`: the site's Notifications (e.g. "Value Change" of status), Webhooks
(on_update, on_change) and DocType Event Server Scripts on Background Job fire as on any doctype's
save; and the owner's desk notification (the bell) for a job that ended in Dead Letter or completed
after a long run (notices.py).

Cost: a site with none of those configured on Background Job pays one memo lookup per transition
(the check behind it is re-read at most every MEMO_SECONDS per process); only sites that hang
something on the doctype pay for Frappe's document hooks."""

import time

import frappe
from frappe import _
from frappe.utils import escape_html, format_duration

from ..notices import DEAD_LETTER, owner_notice, run_seconds
from ..transitions import JOB

# Notifications, Webhooks or Server Scripts added to Background Job start firing at most this
# many seconds later in a running worker (Frappe clears its own caches at once; this memo is ours).
MEMO_SECONDS = 10
_hooked_memo: dict[str, tuple[float, bool]] = {}
DOC_EVENTS = ("on_update", "on_change")  # what Document.save runs after writing an existing row


def on_transition(engine, before: dict, after: dict) -> None:
	"""The engine's on_transition observer: in the caller's open transaction (a web request, a
	handler's work being committed with its job), or in one of its own, committed here, so
	Frappe's after-commit queue (webhooks, notification logs) is sent either way."""
	notice = owner_notice(after, engine.settings)
	hooked = has_document_hooks()
	if not (notice or hooked):
		return
	with engine.store.transaction():
		if hooked:
			run_document_hooks(before, after)
		if notice:
			notify_owner(after, notice)


def has_document_hooks() -> bool:
	"""Whether the site has an enabled Notification, Webhook or DocType Event Server Script on
	Background Job (read through Frappe's own caches of each), memoised for MEMO_SECONDS."""
	site = frappe.local.site
	memo = _hooked_memo.get(site)
	if memo is not None and memo[0] > time.monotonic():
		return memo[1]
	from frappe.core.doctype.server_script.server_script_utils import get_server_script_map
	from frappe.integrations.doctype.webhook import get_all_webhooks

	notifications = frappe.cache.hget(  # the key and shape Document.run_notifications caches
		"notifications",
		JOB,
		lambda: frappe.get_all(
			"Notification", fields=["name", "event", "method"], filters={"enabled": 1, "document_type": JOB}
		),
	)
	webhooks = frappe.cache.get_value("webhooks", get_all_webhooks).get(JOB)
	scripts = get_server_script_map().get(JOB)
	hooked = bool(notifications or webhooks or scripts)
	_hooked_memo[site] = (time.monotonic() + MEMO_SECONDS, hooked)
	return hooked


def forget() -> None:
	"""Drop the memo (tests, and a site that has just configured a Notification)."""
	_hooked_memo.clear()


def run_document_hooks(before: dict, after: dict) -> None:
	"""What Document.save runs after writing an existing row (its controller method, doc_events
	hooks, Notifications, Webhooks, Server Scripts) for `on_update` and `on_change`, with the row
	before the transition as the document before save (so "Value Change" sees the old status).
	Both documents are built from the rows the engine holds: no read."""
	doc = frappe.get_doc({**after, "doctype": JOB})
	if not frappe.db.exists("User", doc.modified_by):
		# The engine's actors ("worker", "scheduler") are not users; Frappe links what a hook makes
		# (a Notification Log's from_user) to the modifier, and refuses a link to no user.
		doc.modified_by = "Administrator"
	doc._doc_before_save = frappe.get_doc({**before, "doctype": JOB})
	doc.flags.dartwing_transition = True  # for hooks that want to tell the engine's writes apart
	for method in DOC_EVENTS:
		doc.run_method(method)


def notify_owner(job: dict, notice: str) -> None:
	"""A Notification Log (type Alert) for the job's owner, linking to the job; Frappe sends it
	after commit. Every value a user or handler wrote is escaped: the bell renders HTML."""
	from frappe.desk.doctype.notification_log.notification_log import enqueue_create_notification

	email = frappe.db.get_value("User", job.get("owner_user"), "email") if job.get("owner_user") else None
	if not email:
		return
	label = f"{escape_html(job['name'])} ({escape_html(job['job_type'])})"
	if notice == DEAD_LETTER:
		subject = _("Background Job {0} ended in Dead Letter: {1}").format(
			label, escape_html((job.get("error_message") or "")[:200])
		)
	else:
		subject = _("Background Job {0} completed after {1}").format(
			label, format_duration(round(run_seconds(job)))
		)
	enqueue_create_notification(
		[email],
		{
			"type": "Alert",
			"document_type": JOB,
			"document_name": job["name"],
			"subject": subject,
			"from_user": "Administrator",
		},
	)
