"""The Store contract every backend meets (background_jobs/store_contract.py), run against the
Frappe store on the site's own database. The standalone stores run it under pytest."""

import frappe
from frappe.tests.utils import FrappeTestCase

from dartwing.dartwing_core.background_jobs import store_contract
from dartwing.dartwing_core.background_jobs.backends.frappe_backend import get_engine
from dartwing.dartwing_core.background_jobs.backends.frappe_store import read_committed
from dartwing.dartwing_core.background_jobs.store_contract import CHECKS, cleanup


def _isolation(level: str) -> None:
	frappe.db.rollback()
	frappe.db.sql(f"set session transaction isolation level {level}")
	frappe.db.commit()


class _StoreTestCase(FrappeTestCase):
	@classmethod
	def setUpClass(cls) -> None:
		super().setUpClass()
		cls.store = get_engine().store

	@classmethod
	def tearDownClass(cls) -> None:
		_isolation("repeatable read")  # MariaDB's default, which web requests run at
		super().tearDownClass()

	def setUp(self) -> None:
		self._clean()

	def tearDown(self) -> None:
		self._clean()

	def _clean(self) -> None:
		"""Checks commit through the store; their `ct-` rows go again, committed, either side."""
		frappe.db.rollback()
		cleanup(self.store)
		frappe.db.commit()


class TestFrappeStoreContract(_StoreTestCase):
	"""As workers and the scheduler run it: at READ COMMITTED (run_job, scheduler_tick)."""

	@classmethod
	def setUpClass(cls) -> None:
		super().setUpClass()
		frappe.db.rollback()
		read_committed()


class TestFrappeStoreUnderRepeatableRead(_StoreTestCase):
	"""As a web request runs it: a compare-and-set must not trust the request's old snapshot."""

	@classmethod
	def setUpClass(cls) -> None:
		super().setUpClass()
		_isolation("repeatable read")

	def test_a_compare_and_set_lost_to_another_connection_reports_false(self) -> None:
		store_contract.check_a_compare_and_set_lost_to_another_connection_reports_false(self.store)


def _test(check):
	def test(self) -> None:
		check(self.store)

	test.__name__ = f"test_{check.__name__.removeprefix('check_')}"
	test.__doc__ = check.__doc__
	return test


for _check in CHECKS:
	setattr(TestFrappeStoreContract, _test(_check).__name__, _test(_check))
