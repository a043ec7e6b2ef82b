"""Handlers only the bench tests use; workers import them through DARTWING_IMPORTS."""

import frappe

from dartwing.dartwing_core.background_jobs import job_handler


@job_handler("whoami_job", timeout=30, max_retries=0, deduplication_window=0)
def whoami_job(ctx):
	"""Reports the Frappe session user the handler runs as."""
	return {"user": frappe.session.user}
