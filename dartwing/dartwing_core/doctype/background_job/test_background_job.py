import frappe

from dartwing.dartwing_core.background_jobs import schema
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
		self.assertEqual(len(doc.name), 20)  # named by the engine (transitions.new_name)
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

	def test_the_purge_takes_what_frappe_keeps_about_a_job_with_it(self):
		"""Its comments, files (from disk too), assignments, shares, tags and follows go, as
		frappe.delete_doc would take them; an e-mail about it stays, unlinked."""
		import os

		from frappe.desk.doctype.tag.tag import add_tag

		from dartwing.dartwing_core.background_jobs.cleanup import purge

		job_id = self.submit_as(self.member_a, label="purged")["job_id"]
		kept_id = self.submit_as(self.member_a, label="kept")["job_id"]
		for job in (job_id, kept_id):
			self.engine.cancel(job, user="Administrator")
			doc = frappe.get_doc(JOB, job)
			doc.add_comment("Comment", "about the job")
			frappe.get_doc(
				{
					"doctype": "ToDo",
					"description": "look at it",
					"allocated_to": self.member_a["name"],
					"reference_type": JOB,
					"reference_name": job,
				}
			).insert()
			frappe.share.add_docshare(
				JOB, job, self.member_a["name"], read=1, flags={"ignore_share_permission": 1}
			)
			add_tag("dw-purge-tag", JOB, job)
			frappe.get_doc(
				{
					"doctype": "Document Follow",
					"ref_doctype": JOB,
					"ref_docname": job,
					"user": self.member_a["name"],
				}
			).insert()
			frappe.get_doc(
				{
					"doctype": "Communication",
					"subject": "mail about it",
					"communication_medium": "Email",
					"reference_doctype": JOB,
					"reference_name": job,
					"timeline_links": [{"link_doctype": JOB, "link_name": job}],
				}
			).insert()
		files = {
			job: frappe.get_doc(
				{
					"doctype": "File",
					"file_name": f"dw-purge-{job}.txt",
					"content": f"attachment of {job}",  # one file on disk each (Frappe shares equal ones)
					"is_private": 1,
					"attached_to_doctype": JOB,
					"attached_to_name": job,
				}
			).insert()
			for job in (job_id, kept_id)
		}
		frappe.db.set_value(  # it ended "tomorrow": younger than any cutoff
			JOB, kept_id, "completed_at", frappe.utils.add_days(frappe.utils.now(), 1), update_modified=False
		)
		frappe.db.commit()

		self.assertGreaterEqual(purge(self.engine, older_than_days=0), 1)
		frappe.db.rollback()

		self.assertFalse(frappe.db.exists(JOB, job_id))
		references = {
			"Comment": ("reference_doctype", "reference_name"),
			"ToDo": ("reference_type", "reference_name"),
			"DocShare": ("share_doctype", "share_name"),
			"Tag Link": ("document_type", "document_name"),
			"Document Follow": ("ref_doctype", "ref_docname"),
			"File": ("attached_to_doctype", "attached_to_name"),
			"Communication Link": ("link_doctype", "link_name"),
		}
		for doctype, (type_field, name_field) in references.items():
			with self.subTest(doctype):
				self.assertFalse(frappe.db.exists(doctype, {type_field: JOB, name_field: job_id}))
				self.assertTrue(frappe.db.exists(doctype, {type_field: JOB, name_field: kept_id}))
		self.assertFalse(os.path.exists(files[job_id].get_full_path()))
		self.assertTrue(os.path.exists(files[kept_id].get_full_path()))
		self.assertTrue(
			frappe.db.exists("Communication", {"subject": "mail about it", "reference_name": None})
		)
		self.engine.store.delete(JOB, [("name", "=", kept_id)])
		frappe.db.delete(LOG, {"background_job": kept_id})
		self.engine.store.delete_references(JOB, [kept_id])
		frappe.db.delete("Communication", {"subject": "mail about it"})
		frappe.db.commit()

	def test_the_composite_indexes_exist(self):
		indexes = {row.Key_name for row in frappe.db.sql(f"show index from `tab{JOB}`", as_dict=True)}
		for fields in schema.composite_indexes(JOB):
			self.assertIn(schema.index_name("dw", fields, ""), indexes)
		for fields in schema.dropped_indexes(JOB):  # the narrower ones they replaced are gone
			self.assertNotIn(schema.index_name("dw", fields, ""), indexes)

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
