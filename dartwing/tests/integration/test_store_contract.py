"""The Store contract, run against every database this machine has (SQLite, MariaDB, PostgreSQL):
what the engine relies on from a store, so that the backends cannot drift apart."""

import threading
from datetime import datetime, timedelta

import pytest

from dartwing.dartwing_core.background_jobs.errors import UniqueViolation, ValidationError
from dartwing.dartwing_core.background_jobs.transitions import JOB, LOG

T0 = datetime(2024, 2, 29, 23, 59, 58, 123456)


def job_row(name: str, **values) -> dict:
	return {"name": name, "job_type": "t_echo", "organization": "Acme", "status": "Queued", **values}


def log(name: str, sequence: int, job: str = "j1", **values) -> dict:
	return {
		"name": name,
		"background_job": job,
		"sequence": sequence,
		"timestamp": T0 + timedelta(seconds=sequence, microseconds=sequence),
		"to_status": "Queued",
		**values,
	}


def names(rows: list[dict]) -> list[str]:
	return [r["name"] for r in rows]


@pytest.fixture
def store(any_engine):
	return any_engine.store


@pytest.fixture
def logs(store):
	"""Five log rows of job j1 (the first without a from_status) and one of job j2."""
	rows = [
		log("a", 1, from_status=None, to_status="Queued", actor="alice"),
		log("b", 2, from_status="Queued", to_status="Running", actor="worker"),
		log("c", 3, from_status="Running", to_status="Failed", actor="worker"),
		log("d", 4, from_status="Failed", to_status="Queued", actor="scheduler"),
		log("e", 5, from_status="Queued", to_status="Running", actor="worker"),
		log("z", 1, job="j2", from_status=None, to_status="Queued", actor="bob"),
	]
	for row in rows:
		store.insert(LOG, row)
	return rows


# -- round trip -------------------------------------------------------------------------------


def test_a_row_reads_back_as_written(store):
	text = "Zoë's report — 日本語, Ελληνικά, emoji 🚀"
	store.insert(
		JOB,
		job_row(
			"r1",
			creation=T0,
			queued_at=datetime(2024, 3, 1, 0, 0, 0, 1),
			input_parameters='{"title": "Zoë 🚀"}',
			error_message=text,
			error_traceback="x" * 200_000,
			progress=42.5,
			retry_count=3,
		),
	)

	row = store.get(JOB, "r1")

	assert row["creation"] == T0
	assert row["queued_at"] == datetime(2024, 3, 1, 0, 0, 0, 1)
	assert row["creation"].tzinfo is None
	assert row["input_parameters"] == '{"title": "Zoë 🚀"}'
	assert row["error_message"] == text
	assert row["error_traceback"] == "x" * 200_000
	assert row["progress"] == 42.5
	assert row["retry_count"] == 3


def test_unset_fields_take_the_doctype_defaults(store):
	store.insert(JOB, {"name": "r1", "job_type": "t_echo", "organization": "Acme"})

	row = store.get(JOB, "r1")

	assert (row["status"], row["priority"], row["retry_count"], row["max_retries"]) == (
		"Pending",
		"Normal",
		0,
		5,
	)
	assert row["next_retry_at"] is None
	assert isinstance(row["creation"], datetime)


def test_a_missing_row_reads_as_none(store):
	assert store.get(JOB, "nope") is None
	assert store.get(JOB, "nope", for_update=True) is None


def test_inserting_an_unknown_field_is_refused(store):
	with pytest.raises(ValidationError) as info:
		store.insert(JOB, job_row("r1", colour="red"))

	assert "colour" in str(info.value)
	assert store.get(JOB, "r1") is None


# -- compare-and-set --------------------------------------------------------------------------


def test_update_without_expectations_changes_the_row(store):
	store.insert(JOB, job_row("r1", transition_count=1))

	assert store.update(JOB, "r1", {"status": "Running", "started_at": T0}) is True

	row = store.get(JOB, "r1")
	assert (row["status"], row["started_at"]) == ("Running", T0)


def test_update_with_a_met_expectation_changes_the_row(store):
	store.insert(JOB, job_row("r1", transition_count=1))

	changed = store.update(
		JOB,
		"r1",
		{"status": "Running", "transition_count": 2},
		expect=[("status", "=", "Queued"), ("transition_count", "=", 1)],
	)

	assert changed is True
	assert store.get(JOB, "r1")["status"] == "Running"


def test_update_with_a_failed_expectation_changes_nothing(store):
	# Given a job another worker already moved on
	store.insert(JOB, job_row("r1", status="Running", transition_count=2))

	# When a second worker tries to claim it as it last saw it
	changed = store.update(
		JOB,
		"r1",
		{"status": "Running", "worker_name": "late", "transition_count": 2},
		expect=[("status", "=", "Queued"), ("transition_count", "=", 1)],
	)

	# Then it loses the race and the row is untouched
	assert changed is False
	row = store.get(JOB, "r1")
	assert (row["status"], row["worker_name"], row["transition_count"]) == ("Running", None, 2)


def test_update_with_one_of_several_expectations_failing_changes_nothing(store):
	store.insert(JOB, job_row("r1", transition_count=1))

	changed = store.update(
		JOB, "r1", {"status": "Running"}, expect=[("status", "=", "Queued"), ("transition_count", "=", 7)]
	)

	assert changed is False
	assert store.get(JOB, "r1")["status"] == "Queued"


def test_update_writing_the_values_already_there_still_reports_the_row(store):
	# A heartbeat in the same microsecond, or a note that changes nothing, must not read as a lost race.
	store.insert(JOB, job_row("r1", heartbeat_at=T0))

	assert store.update(JOB, "r1", {"heartbeat_at": T0}, expect=[("status", "=", "Queued")]) is True


def test_update_of_a_missing_row_reports_false(store):
	assert store.update(JOB, "nope", {"status": "Running"}) is False


# -- unique index and transactions -----------------------------------------------------------


def test_a_second_active_job_with_the_same_hash_is_refused(store):
	store.insert(JOB, job_row("r1", active_hash="h1"))

	with pytest.raises(UniqueViolation):
		store.insert(JOB, job_row("r2", active_hash="h1"))

	assert store.get(JOB, "r2") is None


def test_any_number_of_finished_jobs_may_share_a_hash(store):
	# Finished jobs clear active_hash; NULLs never collide
	for name in ("r1", "r2", "r3"):
		store.insert(JOB, job_row(name, job_hash="h1", active_hash=None))

	assert store.count(JOB, [("job_hash", "=", "h1")]) == 3


def test_clearing_the_active_hash_lets_the_same_job_be_submitted_again(store):
	store.insert(JOB, job_row("r1", active_hash="h1"))
	store.update(JOB, "r1", {"status": "Completed", "active_hash": None})

	store.insert(JOB, job_row("r2", active_hash="h1"))

	assert store.get(JOB, "r2")["active_hash"] == "h1"


def test_an_update_that_would_duplicate_an_active_hash_is_refused(store):
	store.insert(JOB, job_row("r1", active_hash="h1"))
	store.insert(JOB, job_row("r2", active_hash=None))

	with pytest.raises(UniqueViolation):
		store.update(JOB, "r2", {"active_hash": "h1"})

	assert store.get(JOB, "r2")["active_hash"] is None


def test_a_failure_inside_a_transaction_rolls_all_of_it_back(store):
	with pytest.raises(RuntimeError), store.transaction():
		store.insert(JOB, job_row("r1"))
		store.insert(LOG, log("l1", 1, job="r1"))
		raise RuntimeError("crash between the two writes and the commit")

	assert store.get(JOB, "r1") is None
	assert store.get(LOG, "l1") is None


def test_a_unique_violation_inside_a_transaction_rolls_all_of_it_back(store):
	store.insert(JOB, job_row("r1", active_hash="h1"))

	with pytest.raises(UniqueViolation), store.transaction():
		store.insert(LOG, log("l2", 1, job="r2"))
		store.insert(JOB, job_row("r2", active_hash="h1"))

	assert store.get(LOG, "l2") is None
	assert store.get(JOB, "r2") is None


def test_a_caught_unique_violation_leaves_the_transaction_usable(store):
	store.insert(JOB, job_row("r1", active_hash="h1"))

	with store.transaction():
		store.insert(JOB, job_row("r2"))
		with pytest.raises(UniqueViolation):
			store.insert(JOB, job_row("r3", active_hash="h1"))
		store.insert(JOB, job_row("r4"))

	assert store.get(JOB, "r2") is not None
	assert store.get(JOB, "r3") is None
	assert store.get(JOB, "r4") is not None


def test_a_nested_transaction_belongs_to_the_outer_one(store):
	with pytest.raises(RuntimeError), store.transaction():
		with store.transaction():
			store.insert(JOB, job_row("r1"))
		store.update(JOB, "r1", {"status": "Running"})
		raise RuntimeError("outer fails after the inner block finished")

	assert store.get(JOB, "r1") is None


def test_a_transaction_reads_its_own_writes_and_others_see_them_only_after_commit(store):
	seen_by_other = {}

	def read_elsewhere():
		seen_by_other["row"] = store.get(JOB, "r1")

	with store.transaction():
		store.insert(JOB, job_row("r1"))
		assert store.get(JOB, "r1")["status"] == "Queued"
		assert store.count(JOB) == 1
		other = threading.Thread(target=read_elsewhere)
		other.start()
		other.join(timeout=30)

	assert not other.is_alive()
	assert seen_by_other["row"] is None
	assert store.get(JOB, "r1") is not None


# -- filters ----------------------------------------------------------------------------------

FILTER_CASES = [
	([("background_job", "=", "j1")], ["a", "b", "c", "d", "e"]),
	([("actor", "!=", "worker")], ["a", "d", "z"]),
	([("sequence", "<", 3)], ["a", "b", "z"]),
	([("sequence", "<=", 3)], ["a", "b", "c", "z"]),
	([("sequence", ">", 3)], ["d", "e"]),
	([("sequence", ">=", 3)], ["c", "d", "e"]),
	([("timestamp", ">", T0 + timedelta(seconds=4))], ["d", "e"]),
	([("timestamp", "<", T0 + timedelta(seconds=2, microseconds=2))], ["a", "z"]),
	([("timestamp", "<=", T0 + timedelta(seconds=2, microseconds=2))], ["a", "b", "z"]),
	([("to_status", "in", ["Failed", "Running"])], ["b", "c", "e"]),
	([("to_status", "in", ("Failed",))], ["c"]),
	([("to_status", "in", [])], []),
	([("actor", "not in", ["worker", "alice"])], ["d", "z"]),
	([("actor", "not in", [])], ["a", "b", "c", "d", "e", "z"]),
	([("from_status", "is", "set")], ["b", "c", "d", "e"]),
	([("from_status", "is", "not set")], ["a", "z"]),
	([("from_status", "=", None)], ["a", "z"]),
	([("from_status", "!=", None)], ["b", "c", "d", "e"]),
	([("background_job", "=", "j1"), ("to_status", "=", "Running"), ("sequence", ">", 2)], ["e"]),
	([("background_job", "=", "nobody")], []),
]


@pytest.mark.parametrize(("filters", "expected"), FILTER_CASES, ids=[str(f) for f, _ in FILTER_CASES])
def test_filters_select_the_matching_rows(store, logs, filters, expected):
	assert sorted(names(store.get_all(LOG, filters))) == expected
	assert store.count(LOG, filters) == len(expected)


def test_an_unknown_field_in_a_filter_is_named(store, logs):
	with pytest.raises(ValidationError) as info:
		store.get_all(LOG, [("colour", "=", "red")])

	assert info.value.field == "colour"


def test_an_unsupported_operator_is_refused(store, logs):
	with pytest.raises(ValidationError) as info:
		store.get_all(LOG, [("actor", "like", "wor%")])

	assert "like" in str(info.value)


# -- order, paging, fields --------------------------------------------------------------------


def test_order_by_sorts_rows(store, logs):
	j1 = [("background_job", "=", "j1")]

	assert names(store.get_all(LOG, j1, order_by="sequence desc")) == ["e", "d", "c", "b", "a"]
	assert names(store.get_all(LOG, j1, order_by="sequence asc")) == ["a", "b", "c", "d", "e"]
	assert names(store.get_all(LOG, j1, order_by="timestamp desc")) == ["e", "d", "c", "b", "a"]
	assert names(store.get_all(LOG, order_by="sequence asc, background_job desc")) == [
		"z",
		"a",
		"b",
		"c",
		"d",
		"e",
	]


def test_limit_and_offset_page_through_rows(store, logs):
	j1 = [("background_job", "=", "j1")]

	pages = [names(store.get_all(LOG, j1, order_by="sequence asc", limit=2, offset=o)) for o in (0, 2, 4, 6)]

	assert pages == [["a", "b"], ["c", "d"], ["e"], []]


def test_offset_without_limit_returns_the_rest(store, logs):
	rows = store.get_all(LOG, [("background_job", "=", "j1")], order_by="sequence asc", offset=3)

	assert names(rows) == ["d", "e"]


def test_get_all_returns_only_the_fields_asked_for(store, logs):
	rows = store.get_all(LOG, [("name", "=", "c")], ["name", "to_status", "timestamp"])

	assert rows == [
		{"name": "c", "to_status": "Failed", "timestamp": T0 + timedelta(seconds=3, microseconds=3)}
	]


# -- counting and deleting --------------------------------------------------------------------


def test_count_counts_all_or_the_filtered_rows(store, logs):
	assert store.count(LOG) == 6
	assert store.count(LOG, [("background_job", "=", "j2")]) == 1
	assert store.count(JOB) == 0


def test_count_by_groups_rows_by_a_field(store, logs):
	assert store.count_by(LOG, "to_status") == {"Queued": 3, "Running": 2, "Failed": 1}
	assert store.count_by(LOG, "to_status", [("background_job", "=", "j1")]) == {
		"Queued": 2,
		"Running": 2,
		"Failed": 1,
	}
	assert store.count_by(LOG, "from_status", [("background_job", "=", "j2")]) == {None: 1}
	assert store.count_by(LOG, "actor", [("background_job", "=", "nobody")]) == {}


def test_delete_removes_only_the_matching_rows(store, logs):
	deleted = store.delete(LOG, [("background_job", "=", "j1"), ("sequence", "<=", 2)])

	assert deleted == 2
	assert sorted(names(store.get_all(LOG))) == ["c", "d", "e", "z"]


def test_delete_matching_nothing_deletes_nothing(store, logs):
	assert store.delete(LOG, [("background_job", "=", "nobody")]) == 0
	assert store.count(LOG) == 6
