"""The Store contract, run against every database this machine has (SQLite, MariaDB, PostgreSQL).

The checks live in the app (background_jobs/store_contract.py), free of pytest, so Frappe's
`bench run-tests` holds the Frappe store to the same contract; this file only runs them.
"""

import pytest

from dartwing.dartwing_core.background_jobs.store_contract import CHECKS, cleanup
from dartwing.dartwing_core.background_jobs.transitions import JOB, LOG


@pytest.fixture
def store(any_engine):
	store = any_engine.store
	yield store
	cleanup(store)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_store_contract(store, check):
	check(store)

	# On a shared (Frappe) database only the `ct-` prefix keeps the checks' rows (and unique
	# hashes) apart from real ones, and cleanup() is all that removes them: hold both to it here,
	# where the tables start empty.
	written = [
		value
		for doctype, fields in (
			(JOB, ["name", "depends_on", "job_hash", "active_hash"]),
			(LOG, ["name", "background_job"]),
		)
		for row in store.get_all(doctype, fields=fields)
		for value in row.values()
		if value is not None
	]
	assert [v for v in written if not v.startswith("ct-")] == []
	cleanup(store)
	assert (store.count(JOB), store.count(LOG)) == (0, 0)
