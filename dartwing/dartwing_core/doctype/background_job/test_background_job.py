import frappe

from dartwing.dartwing_core.background_jobs.transitions import JOB, LOG
from dartwing.dartwing_core.tests.utils import DartwingTestCase


class TestBackgroundJob(DartwingTestCase):
	def new(self, **values):
		return frappe.get_doc(
			{"doctype": JOB, "job_type": "sample_job", "organization": self.org_a, **values}
		)

	def test_a_desk_insert_is_submitted_through_the_engine(self):
		frappe.set_user(self.member_a["name"])
		doc = self.new(input_parameters='{"label": "desk", "steps": 1}').insert()
		frappe.db.commit()
		self.assertEqual(len(doc.name), 16)
		self.assertEqual(doc.status, "Queued")
		self.assertEqual(doc.owner_user, self.member_a["name"])
		self.assertEqual(doc.triggered_by, "desk")
		self.assertEqual(frappe.db.count(LOG, {"background_job": doc.name}), 1)
		self.engine.cancel(doc.name, user="Administrator")

	def test_a_desk_insert_gets_the_engine_checks(self):
		frappe.set_user(self.member_a["name"])
		with self.assertRaisesRegex(frappe.ValidationError, "parameters"):
			self.new(input_parameters='{"no_such_argument": 1}').insert()
		frappe.set_user(self.member_b["name"])
		# Org A is not theirs: to them it does not exist, as an absent organization would not
		for organization in (self.org_a, "dw-no-such-org"):
			with self.assertRaisesRegex(frappe.LinkValidationError, "Could not find Organization"):
				self.new(organization=organization).insert()

	def test_saving_an_existing_job_is_refused(self):
		job = self.submit_as(self.member_a, label="edit")
		doc = frappe.get_doc(JOB, job["job_id"])
		doc.priority = "Critical"
		with self.assertRaisesRegex(frappe.ValidationError, "only through their actions"):
			doc.save()
		self.engine.cancel(job["job_id"], user="Administrator")
		doc = frappe.get_doc(JOB, job["job_id"])
		doc.status = "Queued"
		with self.assertRaisesRegex(frappe.ValidationError, "finished job changes only through Retry"):
			doc.save()

	def test_only_finished_jobs_are_deleted_and_their_logs_with_them(self):
		job = self.submit_as(self.member_a, label="delete")
		with self.assertRaisesRegex(frappe.ValidationError, "cancel it before deleting"):
			frappe.delete_doc(JOB, job["job_id"], force=True)
		self.engine.cancel(job["job_id"], user="Administrator")
		frappe.delete_doc(JOB, job["job_id"], force=True)
		self.assertFalse(frappe.db.exists(JOB, job["job_id"]))
		self.assertEqual(frappe.db.count(LOG, {"background_job": job["job_id"]}), 0)

	def test_the_composite_indexes_exist(self):
		indexes = {row.Key_name for row in frappe.db.sql(f"show index from `tab{JOB}`", as_dict=True)}
		for name in (
			"dw_organization_status",
			"dw_job_hash_creation",
			"dw_status_next_retry_at",
			"dw_depends_on_status",
		):
			self.assertIn(name, indexes)

	def test_text_a_handler_or_user_controls_is_shown_escaped(self):
		"""Frappe renders read-only Small/Long Text as HTML; Code fields are escaped. The engine
		writes these with raw SQL, so Frappe's save-time sanitizing never sees them."""
		hostile = {
			JOB: (
				"progress_message",
				"output_reference",
				"error_message",
				"error_traceback",
				"input_parameters",  # v15 has no formatter for JSON fields: they rendered raw HTML
				"result",
			),
			LOG: ("message",),
		}
		for doctype, fields in hostile.items():
			meta = frappe.get_meta(doctype)
			for field in fields:
				self.assertEqual(meta.get_field(field).fieldtype, "Code", (doctype, field))
