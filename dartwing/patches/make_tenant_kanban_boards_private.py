"""Kanban boards over the tenant doctypes made public before guards.private_tenant_board: their
columns keep the ids of the cards moved on them, so they become their creator's."""

import frappe

from dartwing.dartwing_core.guards import TENANT_DOCTYPES


def execute() -> None:
	frappe.db.set_value(
		"Kanban Board",
		{"reference_doctype": ["in", sorted(TENANT_DOCTYPES)], "private": 0},
		"private",
		1,
		update_modified=False,
	)
