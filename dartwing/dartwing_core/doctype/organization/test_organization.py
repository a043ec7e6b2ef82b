import frappe
from frappe.tests.utils import FrappeTestCase


class TestOrganization(FrappeTestCase):
	def test_a_negative_queue_limit_is_refused(self):
		doc = frappe.get_doc(
			{"doctype": "Organization", "organization_name": "dw-test-negative", "max_queued_jobs": -1}
		)
		with self.assertRaisesRegex(frappe.ValidationError, "Max Queued Jobs"):
			doc.insert()
