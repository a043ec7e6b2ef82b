"""Shares made before guards.guard_share refused them: a tenant document shared with a user
outside its organization (or with everyone) is unshared."""

import frappe

from dartwing.dartwing_core.guards import TENANT_DOCTYPES, may_reach


def execute() -> None:
	for share in frappe.get_all(
		"DocShare",
		filters={"share_doctype": ["in", sorted(TENANT_DOCTYPES)]},
		fields=["name", "share_doctype", "share_name", "user", "everyone"],
	):
		row = frappe.db.get_value(share.share_doctype, share.share_name, "*", as_dict=True)
		if row is None:
			# DocShare.on_trash comments on the shared document: there is none left to load.
			frappe.db.delete("DocShare", {"name": share.name})
		elif share.everyone or not share.user or not may_reach(share.share_doctype, row, share.user):
			frappe.delete_doc("DocShare", share.name, ignore_permissions=True, force=True)
