"""The Store contract every backend meets (background_jobs/store_contract.py), run against the
Frappe store on the site's own database. The standalone stores run it under pytest."""

import frappe
from frappe.tests.utils import FrappeTestCase

from dartwing.dartwing_core.background_jobs.backends.frappe_backend import get_engine
from dartwing.dartwing_core.background_jobs.store_contract import CHECKS, cleanup


class TestFrappeStoreContract(FrappeTestCase):
	@classmethod
	def setUpClass(cls) -> None:
		super().setUpClass()
		cls.store = get_engine().store

	def setUp(self) -> None:
		self._clean()

	def tearDown(self) -> None:
		self._clean()

	def _clean(self) -> None:
		"""Checks commit through the store; their `ct-` rows go again, committed, either side."""
		frappe.db.rollback()
		cleanup(self.store)
		frappe.db.commit()


def _test(check):
	def test(self) -> None:
		check(self.store)

	test.__name__ = f"test_{check.__name__.removeprefix('check_')}"
	test.__doc__ = check.__doc__
	return test


for _check in CHECKS:
	setattr(TestFrappeStoreContract, _test(_check).__name__, _test(_check))
