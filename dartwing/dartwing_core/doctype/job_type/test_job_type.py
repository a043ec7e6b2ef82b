import re

import frappe
from frappe.tests.utils import FrappeTestCase


class TestJobType(FrappeTestCase):
	def make(self, **values):
		row = {
			"doctype": "Job Type",
			"type_name": f"dw-test-{frappe.generate_hash(length=6)}",
			"handler": "sample_job",
			**values,
		}
		return frappe.get_doc(row)

	def test_the_sample_job_types_ship_as_fixtures(self):
		for name in ("sample_job", "flaky_job", "broken_job", "slow_job", "long_job", "noop"):
			self.assertEqual(frappe.db.get_value("Job Type", name, "handler"), name)

	def test_a_registered_handler_with_sane_numbers_saves_with_the_defaults(self):
		doc = self.make().insert()
		self.assertEqual(
			(doc.default_timeout, doc.max_retries, doc.base_delay, doc.deduplication_window),
			(300, 5, 60, 300),
		)

	def test_an_unregistered_handler_is_refused(self):
		with self.assertRaisesRegex(frappe.ValidationError, "not registered"):
			self.make(handler="os.system").insert()

	def test_bad_numbers_are_refused_naming_the_field(self):
		cases = {
			"default_timeout": 0,
			"max_retries": -1,
			"base_delay": -5,
			"jitter": 1.5,
			"deduplication_window": -1,
		}
		for field, value in cases.items():
			label = frappe.get_meta("Job Type").get_label(field)
			with self.assertRaisesRegex(frappe.ValidationError, re.escape(label)):
				self.make(**{field: value}).insert()
		with self.assertRaisesRegex(frappe.ValidationError, "base_delay"):
			self.make(base_delay=600, max_delay=60).insert()

	def test_requires_permission_must_name_a_role(self):
		with self.assertRaisesRegex(frappe.ValidationError, "Role"):
			self.make(requires_permission="No Such Role").insert()
		self.make(requires_permission="Dartwing Admin").insert()
