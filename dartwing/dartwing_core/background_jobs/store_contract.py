"""The Store contract: what the engine relies on from a store, as plain checks, so every backend
(the SQL store on SQLite, MariaDB and PostgreSQL under pytest; the Frappe store under `bench
run-tests`, plain unittest) is held to the same behaviour and none can drift.

Each check takes a store and raises AssertionError when the store breaks the contract. The checks
may run on a shared database that holds other rows: every row they write is named `ct-...` (links
and hashes too), every read is scoped to those rows, and `cleanup()` removes them.
"""

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from .errors import UniqueViolation, ValidationError
from .ports import Change, Filter, Store
from .transitions import ITEM, JOB, LOG, STEP

T0 = datetime(2024, 2, 29, 23, 59, 58, 123456)
ORG = "ct-Acme"

# Every name a check writes, so cleanup() can delete exactly these rows: the filters have no
# `like`, and a name range ("ct-" <= name < "ct.") is not safe under every collation.
JOB_NAMES = ("ct-r1", "ct-r2", "ct-r3", "ct-r4")
LOG_NAMES = ("ct-a", "ct-b", "ct-c", "ct-d", "ct-e", "ct-z", "ct-l1", "ct-l2")
STEP_NAMES = ("ct-s1", "ct-s2")
# Jobs the log rows link to; ct-j1 and ct-j2 exist only as link values.
LINKED_JOBS = ("ct-j1", "ct-j2", *JOB_NAMES)

# Scopes that keep every read to the checks' own rows.
OUR_JOBS: list[Filter] = [("name", "in", JOB_NAMES)]
OUR_LOGS: list[Filter] = [("name", "in", LOG_NAMES)]


def cleanup(store: Store) -> None:
	"""Delete every row the checks may have written (also after a check failed half-way)."""
	store.delete(LOG, [("name", "in", LOG_NAMES)])
	store.delete(LOG, [("background_job", "in", LINKED_JOBS)])
	store.delete(STEP, [("parent", "in", LINKED_JOBS)])
	store.delete(STEP, [("name", "in", STEP_NAMES)])
	store.delete(ITEM, [("background_job", "in", LINKED_JOBS)])
	store.delete(JOB, [("name", "in", JOB_NAMES)])


class Raised:
	"""What `raises` caught, for assertions on it after the block."""

	value: BaseException | None = None


@contextmanager
def raises(exc_type: type[BaseException], match: str | None = None) -> Iterator[Raised]:
	"""pytest.raises without pytest: the block must raise `exc_type` (whose text matches `match`)."""
	raised = Raised()
	try:
		yield raised
	except exc_type as exc:
		raised.value = exc
		if match is not None:
			assert re.search(match, str(exc)), f"{exc!r} does not match {match!r}"
	else:
		raise AssertionError(f"{exc_type.__name__} was not raised")


def job_row(name: str, **values) -> dict:
	return {"name": name, "job_type": "t_echo", "organization": ORG, "status": "Queued", **values}


def log(name: str, sequence: int, job: str = "ct-j1", **values) -> dict:
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


def insert_logs(store: Store) -> list[dict]:
	"""Five log rows of job ct-j1 (the first without a from_status) and one of job ct-j2."""
	rows = [
		log("ct-a", 1, from_status=None, to_status="Queued", actor="alice"),
		log("ct-b", 2, from_status="Queued", to_status="Running", actor="worker"),
		log("ct-c", 3, from_status="Running", to_status="Failed", actor="worker"),
		log("ct-d", 4, from_status="Failed", to_status="Queued", actor="scheduler"),
		log("ct-e", 5, from_status="Queued", to_status="Running", actor="worker"),
		log("ct-z", 1, job="ct-j2", from_status=None, to_status="Queued", actor="bob"),
	]
	for row in rows:
		store.insert(LOG, row)
	return rows


# -- round trip -------------------------------------------------------------------------------


def check_a_row_reads_back_as_written(store: Store) -> None:
	text = "Zoë's report — 日本語, Ελληνικά, emoji 🚀"
	store.insert(
		JOB,
		job_row(
			"ct-r1",
			creation=T0,
			queued_at=datetime(2024, 3, 1, 0, 0, 0, 1),
			input_parameters='{"title": "Zoë 🚀"}',
			error_message=text,
			error_traceback="x" * 200_000,
			progress=42.5,
			retry_count=3,
		),
	)

	row = store.get(JOB, "ct-r1")

	assert row["creation"] == T0, row["creation"]
	assert row["queued_at"] == datetime(2024, 3, 1, 0, 0, 0, 1), row["queued_at"]
	assert row["creation"].tzinfo is None
	assert row["input_parameters"] == '{"title": "Zoë 🚀"}', row["input_parameters"]
	assert row["error_message"] == text, row["error_message"]
	assert row["error_traceback"] == "x" * 200_000, len(row["error_traceback"] or "")
	assert row["progress"] == 42.5, row["progress"]
	assert row["retry_count"] == 3, row["retry_count"]


def check_unset_fields_take_the_doctype_defaults(store: Store) -> None:
	store.insert(JOB, {"name": "ct-r1", "job_type": "t_echo", "organization": ORG})

	row = store.get(JOB, "ct-r1")

	assert (row["status"], row["priority"], row["retry_count"], row["max_retries"]) == (
		"Pending",
		"Normal",
		0,
		5,
	), row
	assert row["next_retry_at"] is None, row["next_retry_at"]
	assert isinstance(row["creation"], datetime), row["creation"]


def check_a_missing_row_reads_as_none(store: Store) -> None:
	assert store.get(JOB, "ct-nope") is None
	assert store.get(JOB, "ct-nope", for_update=True) is None
	assert store.get(JOB, "ct-nope", latest=True) is None


def check_a_row_reads_with_the_rows_its_links_point_at(store: Store) -> None:
	store.insert(JOB, job_row("ct-r1", progress=10))
	store.insert(JOB, job_row("ct-r2", depends_on="ct-r1"))
	store.insert(JOB, job_row("ct-r3", depends_on="ct-r9"))  # points at nothing
	# No Organization ct-Acme exists
	links = {"depends_on": (JOB, ["progress", "status"]), "organization": ("Organization", ["status"])}

	row, linked = store.get_with_links(JOB, "ct-r2", links)
	assert row == store.get(JOB, "ct-r2"), row
	assert linked == {
		"depends_on": {"name": "ct-r1", "progress": 10, "status": "Queued"},
		"organization": None,
	}

	assert store.get_with_links(JOB, "ct-r3", links)[1]["depends_on"] is None
	assert store.get_with_links(JOB, "ct-r1", links)[1]["depends_on"] is None  # an empty link
	assert store.get_with_links(JOB, "ct-nope", links) == (None, {"depends_on": None, "organization": None})


def check_inserting_an_unknown_field_is_refused(store: Store) -> None:
	with raises(ValidationError) as info:
		store.insert(JOB, job_row("ct-r1", colour="red"))

	assert "colour" in str(info.value), info.value
	assert store.get(JOB, "ct-r1") is None


# -- compare-and-set --------------------------------------------------------------------------


def check_update_without_expectations_changes_the_row(store: Store) -> None:
	store.insert(JOB, job_row("ct-r1", transition_count=1))

	assert store.update(JOB, "ct-r1", {"status": "Running", "started_at": T0}) is True

	row = store.get(JOB, "ct-r1")
	assert (row["status"], row["started_at"]) == ("Running", T0), row


def check_update_with_a_met_expectation_changes_the_row(store: Store) -> None:
	store.insert(JOB, job_row("ct-r1", transition_count=1))

	changed = store.update(
		JOB,
		"ct-r1",
		{"status": "Running", "transition_count": 2},
		expect=[("status", "=", "Queued"), ("transition_count", "=", 1)],
	)

	assert changed is True, changed
	assert store.get(JOB, "ct-r1")["status"] == "Running"


def check_update_with_a_failed_expectation_changes_nothing(store: Store) -> None:
	# Given a job another worker already moved on
	store.insert(JOB, job_row("ct-r1", status="Running", transition_count=2))

	# When a second worker tries to claim it as it last saw it
	changed = store.update(
		JOB,
		"ct-r1",
		{"status": "Running", "worker_name": "late", "transition_count": 2},
		expect=[("status", "=", "Queued"), ("transition_count", "=", 1)],
	)

	# Then it loses the race and the row is untouched
	assert changed is False, changed
	row = store.get(JOB, "ct-r1")
	assert (row["status"], row["worker_name"], row["transition_count"]) == ("Running", None, 2), row


def check_update_with_one_of_several_expectations_failing_changes_nothing(store: Store) -> None:
	store.insert(JOB, job_row("ct-r1", transition_count=1))

	changed = store.update(
		JOB, "ct-r1", {"status": "Running"}, expect=[("status", "=", "Queued"), ("transition_count", "=", 7)]
	)

	assert changed is False, changed
	assert store.get(JOB, "ct-r1")["status"] == "Queued"


def check_update_writing_the_values_already_there_still_reports_the_row(store: Store) -> None:
	# A heartbeat in the same microsecond, or a note that changes nothing, must not read as a lost race.
	store.insert(JOB, job_row("ct-r1", heartbeat_at=T0))

	assert store.update(JOB, "ct-r1", {"heartbeat_at": T0}, expect=[("status", "=", "Queued")]) is True


def check_update_of_a_missing_row_reports_false(store: Store) -> None:
	assert store.update(JOB, "ct-nope", {"status": "Running"}) is False


def check_updating_an_unknown_field_is_refused(store: Store) -> None:
	store.insert(JOB, job_row("ct-r1"))

	with raises(ValidationError) as info:
		store.update(JOB, "ct-r1", {"status": "Running", "colour": "red"})

	assert info.value.field == "colour", info.value
	assert store.get(JOB, "ct-r1")["status"] == "Queued"


# -- unique index and transactions -----------------------------------------------------------


def check_a_second_active_job_with_the_same_hash_is_refused(store: Store) -> None:
	store.insert(JOB, job_row("ct-r1", active_hash="ct-h1"))

	with raises(UniqueViolation):
		store.insert(JOB, job_row("ct-r2", active_hash="ct-h1"))

	assert store.get(JOB, "ct-r2") is None


def check_any_number_of_finished_jobs_may_share_a_hash(store: Store) -> None:
	# Finished jobs clear active_hash; NULLs never collide
	for name in ("ct-r1", "ct-r2", "ct-r3"):
		store.insert(JOB, job_row(name, job_hash="ct-h1", active_hash=None))

	assert store.count(JOB, [("job_hash", "=", "ct-h1")]) == 3


def check_clearing_the_active_hash_lets_the_same_job_be_submitted_again(store: Store) -> None:
	store.insert(JOB, job_row("ct-r1", active_hash="ct-h1"))
	store.update(JOB, "ct-r1", {"status": "Completed", "active_hash": None})

	store.insert(JOB, job_row("ct-r2", active_hash="ct-h1"))

	assert store.get(JOB, "ct-r2")["active_hash"] == "ct-h1"


def check_an_update_that_would_duplicate_an_active_hash_is_refused(store: Store) -> None:
	store.insert(JOB, job_row("ct-r1", active_hash="ct-h1"))
	store.insert(JOB, job_row("ct-r2", active_hash=None))

	with raises(UniqueViolation):
		store.update(JOB, "ct-r2", {"active_hash": "ct-h1"})

	assert store.get(JOB, "ct-r2")["active_hash"] is None


def check_a_failure_inside_a_transaction_rolls_all_of_it_back(store: Store) -> None:
	with raises(RuntimeError), store.transaction():
		store.insert(JOB, job_row("ct-r1"))
		store.insert(LOG, log("ct-l1", 1, job="ct-r1"))
		raise RuntimeError("crash between the two writes and the commit")

	assert store.get(JOB, "ct-r1") is None
	assert store.get(LOG, "ct-l1") is None


def check_a_unique_violation_inside_a_transaction_rolls_all_of_it_back(store: Store) -> None:
	store.insert(JOB, job_row("ct-r1", active_hash="ct-h1"))

	with raises(UniqueViolation), store.transaction():
		store.insert(LOG, log("ct-l2", 1, job="ct-r2"))
		store.insert(JOB, job_row("ct-r2", active_hash="ct-h1"))

	assert store.get(LOG, "ct-l2") is None
	assert store.get(JOB, "ct-r2") is None


def check_a_caught_unique_violation_leaves_the_transaction_usable(store: Store) -> None:
	store.insert(JOB, job_row("ct-r1", active_hash="ct-h1"))

	with store.transaction():
		store.insert(JOB, job_row("ct-r2"))
		with raises(UniqueViolation):
			store.insert(JOB, job_row("ct-r3", active_hash="ct-h1"))
		store.insert(JOB, job_row("ct-r4"))

	assert store.get(JOB, "ct-r2") is not None
	assert store.get(JOB, "ct-r3") is None
	assert store.get(JOB, "ct-r4") is not None


def check_a_nested_transaction_belongs_to_the_outer_one(store: Store) -> None:
	with raises(RuntimeError), store.transaction():
		with store.transaction():
			store.insert(JOB, job_row("ct-r1"))
		store.update(JOB, "ct-r1", {"status": "Running"})
		raise RuntimeError("outer fails after the inner block finished")

	assert store.get(JOB, "ct-r1") is None


def _elsewhere(work: Callable[[], object]) -> object:
	"""Run `work` on another thread, which a store serves on its own connection, and return its
	result (or raise its error)."""
	outcome: dict = {}

	def run() -> None:
		try:
			outcome["value"] = work()
		except BaseException as exc:
			outcome["error"] = exc

	thread = threading.Thread(target=run)
	thread.start()
	thread.join(timeout=30)
	assert not thread.is_alive(), "the other connection hung"
	if "error" in outcome:
		raise outcome["error"]
	return outcome["value"]


def check_a_transaction_reads_its_own_writes_and_others_see_them_only_after_commit(store: Store) -> None:
	with store.transaction():
		store.insert(JOB, job_row("ct-r1"))
		assert store.get(JOB, "ct-r1")["status"] == "Queued"
		assert store.count(JOB, OUR_JOBS) == 1
		seen_by_other = _elsewhere(lambda: store.get(JOB, "ct-r1"))

	assert seen_by_other is None, seen_by_other
	assert store.get(JOB, "ct-r1") is not None


def check_a_compare_and_set_lost_to_another_connection_reports_false(store: Store) -> None:
	store.insert(JOB, job_row("ct-r1", transition_count=1))
	assert store.get(JOB, "ct-r1")["transition_count"] == 1  # may pin a snapshot (REPEATABLE READ)

	assert _elsewhere(lambda: store.update(JOB, "ct-r1", {"transition_count": 2, "status": "Running"}))

	lost = store.update(JOB, "ct-r1", {"status": "Canceled"}, expect=[("transition_count", "=", 1)])
	assert lost is False, "a compare-and-set another connection won must report False"
	assert _elsewhere(lambda: store.get(JOB, "ct-r1")["status"]) == "Running"


def check_reads_see_what_other_connections_committed(store: Store) -> None:
	store.insert(JOB, job_row("ct-r1", progress=10))
	assert store.get(JOB, "ct-r1")["progress"] == 10

	_elsewhere(lambda: store.update(JOB, "ct-r1", {"progress": 55, "cancel_requested_at": T0}))

	# What a running job's checkpoint relies on to notice a cancel (READ COMMITTED semantics).
	row = store.get(JOB, "ct-r1")
	assert (row["progress"], row["cancel_requested_at"]) == (55, T0)


def check_a_locking_read_sees_rows_committed_after_the_snapshot(store: Store) -> None:
	# Where a session keeps a snapshot for its transaction (a Frappe web request, REPEATABLE
	# READ), this read pins one; what the engine reads after a unique-index refusal must not.
	assert store.get_all(JOB, OUR_JOBS, ["name"]) == []

	_elsewhere(lambda: store.insert(JOB, job_row("ct-r2", active_hash="ct-h2")))

	found = store.get_all(JOB, [*OUR_JOBS, ("active_hash", "=", "ct-h2")], ["name"], for_update=True)
	assert [row["name"] for row in found] == ["ct-r2"]


def check_update_apart_commits_at_once(store: Store) -> None:
	store.insert(JOB, job_row("ct-r1", progress=0))

	assert store.update_apart(JOB, "ct-r1", {"progress": 30}, expect=[("status", "=", "Queued")])
	assert not store.update_apart(JOB, "ct-r1", {"progress": 40}, expect=[("status", "=", "Running")])

	assert _elsewhere(lambda: store.get(JOB, "ct-r1")["progress"]) == 30


def check_a_session_commits_each_write_at_once_and_reads_fresh(store: Store) -> None:
	# What a worker's job runs in: one held connection, no transaction of its own.
	with store.session():
		store.insert(JOB, job_row("ct-r1", progress=0))
		assert _elsewhere(lambda: store.get(JOB, "ct-r1")) is not None

		_elsewhere(lambda: store.update(JOB, "ct-r1", {"progress": 55}))
		assert store.get(JOB, "ct-r1")["progress"] == 55

		with raises(RuntimeError):
			with store.transaction():
				store.update(JOB, "ct-r1", {"progress": 99})
				raise RuntimeError("the transaction fails")
		assert store.get(JOB, "ct-r1")["progress"] == 55

		assert store.update(JOB, "ct-r1", {"progress": 60})
		assert _elsewhere(lambda: store.get(JOB, "ct-r1")["progress"]) == 60

		# A read may leave its transaction open: it must neither block another connection's
		# write nor let a compare-and-set that connection won pass.
		assert store.get(JOB, "ct-r1")["transition_count"] == 0
		assert _elsewhere(lambda: store.update(JOB, "ct-r1", {"transition_count": 2}))
		assert not store.update(JOB, "ct-r1", {"status": "Running"}, expect=[("transition_count", "=", 0)])
		assert store.update(JOB, "ct-r1", {"status": "Running"}, expect=[("transition_count", "=", 2)])
	assert _elsewhere(lambda: store.get(JOB, "ct-r1")["status"]) == "Running"


# -- compare_and_set: a status transition ----------------------------------------------------


def _finish_r1(store: Store, expected_count: int, log_name: str = "ct-l1") -> list[dict] | None:
	"""ct-r1 Queued -> Completed with its log row, reading the jobs that wait on it."""
	return store.compare_and_set(
		JOB,
		"ct-r1",
		{"status": "Completed", "transition_count": expected_count + 1, "progress": 100},
		[("transition_count", "=", expected_count), ("status", "=", "Queued")],
		record=(LOG, log(log_name, expected_count + 1, job="ct-r1", to_status="Completed")),
		then_read=(JOB, [("depends_on", "=", "ct-r1"), ("status", "=", "Pending")], ["name"]),
	)


def check_a_won_compare_and_set_writes_the_row_and_its_record_and_reads(store: Store) -> None:
	store.insert(JOB, job_row("ct-r1", transition_count=0))
	store.insert(JOB, job_row("ct-r2", status="Pending", depends_on="ct-r1"))
	store.insert(JOB, job_row("ct-r3", status="Canceled", depends_on="ct-r1"))

	children = _finish_r1(store, 0)

	assert children is not None and names(children) == ["ct-r2"], children
	assert children == [{"name": "ct-r2"}], "only the fields asked for"
	committed = _elsewhere(lambda: (store.get(JOB, "ct-r1"), store.get(LOG, "ct-l1")))
	assert (committed[0]["status"], committed[0]["transition_count"]) == ("Completed", 1)
	assert committed[1] is not None and committed[1]["to_status"] == "Completed"
	assert (
		store.compare_and_set(
			JOB,
			"ct-r2",
			{"status": "Queued"},
			[("status", "=", "Pending")],
			record=(LOG, log("ct-l2", 1, "ct-r2")),
		)
		== []
	), "without then_read a won compare-and-set reads nothing"


def check_a_lost_compare_and_set_writes_nothing(store: Store) -> None:
	store.insert(JOB, job_row("ct-r1", transition_count=3, progress=0))

	store.insert(LOG, log("ct-l2", 9, job="ct-j1"))

	assert _finish_r1(store, 2) is None
	assert _finish_r1(store, 2, log_name="ct-l2") is None, "a lost one never tries its record"

	row = store.get(JOB, "ct-r1")
	assert (row["status"], row["transition_count"], row["progress"]) == ("Queued", 3, 0)
	assert store.get(LOG, "ct-l1") is None, "a lost compare-and-set must not write its log row"


def check_a_compare_and_set_whose_record_is_refused_changes_nothing(store: Store) -> None:
	store.insert(JOB, job_row("ct-r1", transition_count=0))
	store.insert(LOG, log("ct-l1", 9, job="ct-j1"))

	with raises(UniqueViolation):
		_finish_r1(store, 0)  # the log row's name is taken

	assert _elsewhere(lambda: store.get(JOB, "ct-r1")["status"]) == "Queued"
	assert store.get(LOG, "ct-l1")["background_job"] == "ct-j1"
	assert _finish_r1(store, 0, log_name="ct-l2") == [], "the store stays usable"


def _queue_many(store: Store, logs: tuple[str, str, str]) -> list[bool]:
	"""ct-r1, ct-r2 and ct-r3 Pending -> Queued at once, each expecting transition_count 0."""
	return store.compare_and_set_many(
		JOB,
		[
			Change(
				name,
				{"status": "Queued", "transition_count": 1},
				[("transition_count", "=", 0), ("status", "=", "Pending")],
				(LOG, log(log_name, 1, job=name)),
			)
			for name, log_name in zip(("ct-r1", "ct-r2", "ct-r3"), logs, strict=True)
		],
	)


def check_many_compare_and_sets_write_the_winners_only(store: Store) -> None:
	for name in ("ct-r1", "ct-r2", "ct-r3"):
		store.insert(JOB, job_row(name, status="Pending", transition_count=5 if name == "ct-r2" else 0))

	assert _queue_many(store, ("ct-a", "ct-b", "ct-c")) == [True, False, True]

	committed = _elsewhere(lambda: store.get_all(JOB, OUR_JOBS, ["name", "status"], order_by="name"))
	assert [r["status"] for r in committed] == ["Queued", "Pending", "Queued"]
	assert names(store.get_all(LOG, OUR_LOGS, order_by="name")) == ["ct-a", "ct-c"], "no record for a loser"


def check_many_compare_and_sets_with_a_refused_record_write_none(store: Store) -> None:
	for name in ("ct-r1", "ct-r2", "ct-r3"):
		store.insert(JOB, job_row(name, status="Pending", transition_count=0))
	store.insert(LOG, log("ct-z", 9, job="ct-j1"))

	with raises(UniqueViolation):
		_queue_many(store, ("ct-a", "ct-z", "ct-c"))  # the second record's name is taken

	committed = _elsewhere(lambda: store.get_all(JOB, OUR_JOBS, ["status"]))
	assert [r["status"] for r in committed] == ["Pending"] * 3
	assert names(store.get_all(LOG, OUR_LOGS)) == ["ct-z"]
	assert _queue_many(store, ("ct-a", "ct-b", "ct-c")) == [True] * 3, "the store stays usable"


def check_many_compare_and_sets_write_their_further_records_for_the_winners_only(store: Store) -> None:
	# A Job Schedule's move with the job it creates and that job's first log row: here ct-r1 and
	# ct-r2 move, creating ct-r3 and ct-r4, each with two log rows.
	for name in ("ct-r1", "ct-r2"):
		store.insert(JOB, job_row(name, status="Pending", transition_count=5 if name == "ct-r2" else 0))
	created = {"ct-r1": ("ct-r3", "ct-a", "ct-b"), "ct-r2": ("ct-r4", "ct-c", "ct-d")}
	changes = [
		Change(
			name,
			{"transition_count": 1},
			[("transition_count", "=", 0)],
			(JOB, job_row(child, job_hash=f"{child}-h", active_hash=f"{child}-h")),
			((LOG, log(first, 1, job=child)), (LOG, log(second, 2, job=child))),
		)
		for name, (child, first, second) in created.items()
	]

	assert store.compare_and_set_many(JOB, changes) == [True, False]

	jobs, logs = _elsewhere(
		lambda: (
			names(store.get_all(JOB, OUR_JOBS, order_by="name")),
			store.get_all(LOG, OUR_LOGS, order_by="name"),
		)
	)
	assert jobs == ["ct-r1", "ct-r2", "ct-r3"], "no record for a loser"
	assert [(r["name"], r["background_job"]) for r in logs] == [("ct-a", "ct-r3"), ("ct-b", "ct-r3")]


def check_a_compare_and_set_after_a_read_in_a_session_commits(store: Store) -> None:
	# What a worker's claim is: read the job, then move it, on the session's one connection.
	store.insert(JOB, job_row("ct-r1", transition_count=0))
	with store.session():
		assert store.get(JOB, "ct-r1")["transition_count"] == 0
		assert _finish_r1(store, 0) == []
		assert _elsewhere(lambda: store.get(JOB, "ct-r1")["status"]) == "Completed"
		assert store.get(LOG, "ct-l1") is not None
		# ...and a compare-and-set another connection won since this session's read loses.
		store.insert(JOB, job_row("ct-r2", transition_count=0))
		assert store.get(JOB, "ct-r2")["transition_count"] == 0
		assert _elsewhere(lambda: store.update(JOB, "ct-r2", {"transition_count": 1}))
		lost = store.compare_and_set(
			JOB,
			"ct-r2",
			{"status": "Running", "transition_count": 1},
			[("transition_count", "=", 0)],
			record=(LOG, log("ct-l2", 1, job="ct-r2")),
		)
		assert lost is None
	assert store.get(LOG, "ct-l2") is None


def check_a_compare_and_set_inside_a_transaction_belongs_to_it(store: Store) -> None:
	store.insert(JOB, job_row("ct-r1", transition_count=0))

	with raises(RuntimeError), store.transaction():
		assert _finish_r1(store, 0) == []
		assert store.get(JOB, "ct-r1")["status"] == "Completed", "the transaction reads its own write"
		raise RuntimeError("the transaction fails after the compare-and-set")

	assert store.get(JOB, "ct-r1")["status"] == "Queued"
	assert store.get(LOG, "ct-l1") is None


# -- filters ----------------------------------------------------------------------------------

# Each case runs together with OUR_LOGS, so rows of other jobs in a shared database never match.
FILTER_CASES: list[tuple[list[Filter], list[str]]] = [
	([("background_job", "=", "ct-j1")], ["ct-a", "ct-b", "ct-c", "ct-d", "ct-e"]),
	([("actor", "!=", "worker")], ["ct-a", "ct-d", "ct-z"]),
	([("sequence", "<", 3)], ["ct-a", "ct-b", "ct-z"]),
	([("sequence", "<=", 3)], ["ct-a", "ct-b", "ct-c", "ct-z"]),
	([("sequence", ">", 3)], ["ct-d", "ct-e"]),
	([("sequence", ">=", 3)], ["ct-c", "ct-d", "ct-e"]),
	([("timestamp", ">", T0 + timedelta(seconds=4))], ["ct-d", "ct-e"]),
	([("timestamp", "<", T0 + timedelta(seconds=2, microseconds=2))], ["ct-a", "ct-z"]),
	([("timestamp", "<=", T0 + timedelta(seconds=2, microseconds=2))], ["ct-a", "ct-b", "ct-z"]),
	([("to_status", "in", ["Failed", "Running"])], ["ct-b", "ct-c", "ct-e"]),
	([("to_status", "in", ("Failed",))], ["ct-c"]),
	([("to_status", "in", [])], []),
	([("actor", "not in", ["worker", "alice"])], ["ct-d", "ct-z"]),
	([("actor", "not in", [])], ["ct-a", "ct-b", "ct-c", "ct-d", "ct-e", "ct-z"]),
	([("from_status", "is", "set")], ["ct-b", "ct-c", "ct-d", "ct-e"]),
	([("from_status", "is", "not set")], ["ct-a", "ct-z"]),
	([("from_status", "=", None)], ["ct-a", "ct-z"]),
	([("from_status", "!=", None)], ["ct-b", "ct-c", "ct-d", "ct-e"]),
	([("background_job", "=", "ct-j1"), ("to_status", "=", "Running"), ("sequence", ">", 2)], ["ct-e"]),
	([("background_job", "=", "ct-nobody")], []),
]


def check_filters_select_the_matching_rows(store: Store) -> None:
	insert_logs(store)

	for filters, expected in FILTER_CASES:
		scoped: Sequence[Filter] = [*filters, *OUR_LOGS]
		found = sorted(names(store.get_all(LOG, scoped)))
		assert found == expected, f"{filters}: got {found}, expected {expected}"
		counted = store.count(LOG, scoped)
		assert counted == len(expected), f"{filters}: counted {counted}, expected {len(expected)}"


def check_an_unknown_field_in_a_filter_is_named(store: Store) -> None:
	insert_logs(store)

	with raises(ValidationError) as info:
		store.get_all(LOG, [("colour", "=", "red")])

	assert info.value.field == "colour", info.value


def check_an_unsupported_operator_is_refused(store: Store) -> None:
	insert_logs(store)

	with raises(ValidationError) as info:
		store.get_all(LOG, [("actor", "like", "wor%")])

	assert "like" in str(info.value), info.value


# -- order, paging, fields --------------------------------------------------------------------


def check_order_by_sorts_rows(store: Store) -> None:
	insert_logs(store)
	j1: list[Filter] = [("background_job", "=", "ct-j1")]

	found = names(store.get_all(LOG, j1, order_by="sequence desc"))
	assert found == ["ct-e", "ct-d", "ct-c", "ct-b", "ct-a"], found
	found = names(store.get_all(LOG, j1, order_by="sequence asc"))
	assert found == ["ct-a", "ct-b", "ct-c", "ct-d", "ct-e"], found
	found = names(store.get_all(LOG, j1, order_by="timestamp desc"))
	assert found == ["ct-e", "ct-d", "ct-c", "ct-b", "ct-a"], found
	found = names(store.get_all(LOG, OUR_LOGS, order_by="sequence asc, background_job desc"))
	assert found == ["ct-z", "ct-a", "ct-b", "ct-c", "ct-d", "ct-e"], found


def check_limit_and_offset_page_through_rows(store: Store) -> None:
	insert_logs(store)
	j1: list[Filter] = [("background_job", "=", "ct-j1")]

	pages = [names(store.get_all(LOG, j1, order_by="sequence asc", limit=2, offset=o)) for o in (0, 2, 4, 6)]

	assert pages == [["ct-a", "ct-b"], ["ct-c", "ct-d"], ["ct-e"], []], pages


def check_offset_without_limit_returns_the_rest(store: Store) -> None:
	insert_logs(store)

	rows = store.get_all(LOG, [("background_job", "=", "ct-j1")], order_by="sequence asc", offset=3)

	assert names(rows) == ["ct-d", "ct-e"], names(rows)


def check_get_all_returns_only_the_fields_asked_for(store: Store) -> None:
	insert_logs(store)

	rows = store.get_all(LOG, [("name", "=", "ct-c")], ["name", "to_status", "timestamp"])

	assert rows == [
		{"name": "ct-c", "to_status": "Failed", "timestamp": T0 + timedelta(seconds=3, microseconds=3)}
	], rows


# -- counting and deleting --------------------------------------------------------------------


def check_count_counts_all_or_the_filtered_rows(store: Store) -> None:
	insert_logs(store)

	assert store.count(LOG, OUR_LOGS) == 6
	# Without filters it counts the whole table, which on a shared database holds others' rows too.
	assert store.count(LOG) >= 6
	assert store.count(LOG, [("background_job", "=", "ct-j2")]) == 1
	assert store.count(JOB, OUR_JOBS) == 0


def check_count_by_groups_rows_by_a_field(store: Store) -> None:
	insert_logs(store)

	counts = store.count_by(LOG, "to_status", OUR_LOGS)
	assert counts == {"Queued": 3, "Running": 2, "Failed": 1}, counts
	counts = store.count_by(LOG, "to_status", [("background_job", "=", "ct-j1")])
	assert counts == {"Queued": 2, "Running": 2, "Failed": 1}, counts
	counts = store.count_by(LOG, "from_status", [("background_job", "=", "ct-j2")])
	assert counts == {None: 1}, counts
	counts = store.count_by(LOG, "actor", [("background_job", "=", "ct-nobody")])
	assert counts == {}, counts


def _timed_jobs(store: Store) -> None:
	"""ct-r1..r3 of type a ran 3.000001 s, 1 s and 2.5 s; ct-r4 of type b never started."""
	for name, job_type, took in (
		("ct-r1", "a", 3.000001),
		("ct-r2", "a", 1),
		("ct-r3", "a", 2.5),
		("ct-r4", "b", None),
	):
		started = None if took is None else T0
		ended = T0 + timedelta(seconds=took or 7)
		store.insert(
			JOB,
			job_row(
				name, job_type=f"ct-{job_type}", status="Completed", started_at=started, completed_at=ended
			),
		)


def check_aggregate_counts_averages_and_ranks_durations_per_group(store: Store) -> None:
	_timed_jobs(store)
	seconds = ("started_at", "completed_at")
	measures = {
		"jobs": ("count", "*"),
		"timed": ("count", seconds),
		"average": ("avg", seconds),
		"longest": ("max", seconds),
		"p50": ("p50", seconds),
		"p95": ("p95", seconds),
		"retries": ("sum", "retry_count"),
	}

	rows = store.aggregate(JOB, measures, OUR_JOBS, group_by=["job_type"])

	by_type = {row["job_type"]: row for row in rows}
	assert sorted(by_type) == ["ct-a", "ct-b"], rows
	a, b = by_type["ct-a"], by_type["ct-b"]
	assert (a["jobs"], a["timed"], a["retries"]) == (3, 3, 0), a
	assert abs(a["average"] - 6.500001 / 3) < 1e-6, a
	# Nearest rank over 1, 2.5, 3.000001: p50 is the 2nd value (ceil(1.5)), p95 the 3rd.
	assert (a["p50"], a["p95"], a["longest"]) == (2.5, 3.000001, 3.000001), a
	# A job without started_at has no duration: counted as a row, skipped by every measure of it.
	assert (b["jobs"], b["timed"], b["average"], b["p95"]) == (1, 0, None, None), b


def check_aggregate_without_groups_is_one_row_and_empty_groups_are_none(store: Store) -> None:
	_timed_jobs(store)
	measures = {"jobs": ("count", "*"), "p95": ("p95", ("started_at", "completed_at"))}

	assert store.aggregate(JOB, measures, OUR_JOBS) == [{"jobs": 4, "p95": 3.000001}]
	nothing = [*OUR_JOBS, ("status", "=", "Running")]
	assert store.aggregate(JOB, measures, nothing) == [{"jobs": 0, "p95": None}]
	assert store.aggregate(JOB, measures, nothing, group_by=["job_type"]) == []
	with raises(ValidationError, "unknown aggregate"):
		store.aggregate(JOB, {"x": ("median", "retry_count")}, OUR_JOBS)
	with raises(ValidationError, "not_a_field"):
		store.aggregate(JOB, {"x": ("max", "not_a_field")}, OUR_JOBS)


def check_delete_removes_only_the_matching_rows(store: Store) -> None:
	insert_logs(store)

	deleted = store.delete(LOG, [("background_job", "=", "ct-j1"), ("sequence", "<=", 2)])

	assert deleted == 2, deleted
	found = sorted(names(store.get_all(LOG, OUR_LOGS)))
	assert found == ["ct-c", "ct-d", "ct-e", "ct-z"], found


def check_delete_matching_nothing_deletes_nothing(store: Store) -> None:
	insert_logs(store)

	assert store.delete(LOG, [("background_job", "=", "ct-nobody")]) == 0
	assert store.count(LOG, OUR_LOGS) == 6


# -- child tables ------------------------------------------------------------------------------


def check_a_jobs_child_rows_are_written_and_read_by_parent(store: Store) -> None:
	"""Step rows: a child table of the job (Frappe's parent columns), written and changed by the
	engine like any row, and read by their parent."""
	store.insert(JOB, job_row("ct-r1"))
	for order, name in enumerate(STEP_NAMES, 1):
		store.insert(
			STEP,
			{
				"name": name,
				"parent": "ct-r1",
				"parenttype": JOB,
				"parentfield": "steps",
				"idx": order,
				"step_name": f"step {order}",
				"step_order": order,
				"status": "Running",
				"started_at": T0,
			},
		)

	assert store.update(STEP, "ct-s2", {"status": "Completed", "result": '{"rows": 3}', "duration": 1.5})

	rows = store.get_all(STEP, [("parent", "=", "ct-r1")], order_by="step_order asc")
	assert [(r["name"], r["status"], r["idx"]) for r in rows] == [
		("ct-s1", "Running", 1),
		("ct-s2", "Completed", 2),
	], rows
	assert (rows[1]["result"], rows[1]["duration"], rows[0]["timed_out"]) == ('{"rows": 3}', 1.5, 0), rows
	assert (rows[0]["parenttype"], rows[0]["parentfield"], rows[0]["started_at"]) == (JOB, "steps", T0)


# -- many rows at once (a job's items) -----------------------------------------------------------


def _item(index: int, key: str | None = None, **values) -> dict:
	return {
		"name": f"ct-r1-{index}",
		"background_job": "ct-r1",
		"item_index": index,
		"item_key": key or f"k{index}",
		"status": "Pending",
		**values,
	}


def check_insert_many_writes_every_row(store: Store) -> None:
	store.insert_many(ITEM, [_item(n, checksum=f"c{n}") for n in range(2500)])
	store.insert_many(ITEM, [])

	assert store.count(ITEM, [("background_job", "=", "ct-r1")]) == 2500
	last = store.get(ITEM, "ct-r1-2499")
	assert (last["item_key"], last["checksum"], last["status"], last["attempt"]) == (
		"k2499",
		"c2499",
		"Pending",
		0,
	)


def check_insert_many_with_a_repeated_key_writes_none(store: Store) -> None:
	"""The unique index on (background_job, item_key): a list with a repeat records nothing."""
	with raises(UniqueViolation):
		with store.transaction():
			store.insert_many(ITEM, [_item(n) for n in range(10)])
			store.insert_many(ITEM, [_item(10), _item(11, key="k3")])

	assert store.count(ITEM, [("background_job", "=", "ct-r1")]) == 0
	store.insert_many(ITEM, [_item(1), _item(2, key="k1-other")])  # the same key in another job is fine
	store.insert_many(ITEM, [{**_item(1), "name": "ct-r2-1", "background_job": "ct-r2"}])
	assert store.count(ITEM, [("item_key", "=", "k1")]) == 2


def check_update_all_sets_the_matching_rows(store: Store) -> None:
	store.insert_many(ITEM, [_item(n) for n in range(5)])

	matched = store.update_all(
		ITEM,
		[("name", "in", ["ct-r1-1", "ct-r1-3"])],
		{"status": "Completed", "attempt": 2, "completed_at": T0},
	)

	assert matched == 2, matched
	rows = store.get_all(
		ITEM, [("background_job", "=", "ct-r1")], ["item_index", "status", "attempt"], "item_index"
	)
	assert [(r["status"], r["attempt"]) for r in rows] == [
		("Pending", 0),
		("Completed", 2),
		("Pending", 0),
		("Completed", 2),
		("Pending", 0),
	], rows
	assert store.update_all(ITEM, [("name", "in", [])], {"status": "Failed"}) == 0


# Every check above, in file order: a new check_* function joins the contract by being defined.
CHECKS: list[Callable[[Store], None]] = [
	value for key, value in list(globals().items()) if key.startswith("check_") and callable(value)
]
