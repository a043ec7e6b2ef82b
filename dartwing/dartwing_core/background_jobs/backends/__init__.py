"""Backends translate the engine's ports to concrete systems; they never decide anything.

`standalone` (SQLAlchemy + RQ + Redis pub/sub) runs without Frappe. A Frappe backend, built on
frappe.db, frappe.enqueue and frappe.publish_realtime, is the only engine code that imports frappe.
"""
