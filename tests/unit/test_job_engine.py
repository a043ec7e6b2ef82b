"""Submitting jobs: every check names the bad field and leaves no trace; duplicates, queue limits,
dependencies and permissions behave as a caller expects. Real SQLite store and real Redis queues."""

import dataclasses
import json
import math
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dartwing.dartwing_core.background_jobs import admin, states
from dartwing.dartwing_core.background_jobs.engine import utcnow
from dartwing.dartwing_core.background_jobs.errors import (
	DuplicateJob,
	PermissionDenied,
	QueueFull,
	RateLimited,
	ValidationError,
)
from dartwing.dartwing_core.background_jobs.executor import execute
from dartwing.dartwing_core.background_jobs.transitions import JOB, LOG, new_name
from tests.conftest import registered_types

NO_TRACE = (0, 0, 0)


def traces(engine) -> tuple[int, int, int]:
	"""What a submit can leave behind: job rows, log rows, messages on the RQ queues."""
	messages = sum(q.count for q in engine.queue.queues.values())
	return engine.store.count(JOB), engine.store.count(LOG), messages


def submit(engine, **overrides) -> dict:
	args = {"job_type": "t_echo", "organization": "Acme", "parameters": {"value": "a"}, **overrides}
	return engine.submit(**args)


def run_in_process(engine, job_id: str) -> str:
	return execute(engine, job_id, engine.get_job(job_id)["queue_job_id"])


def assert_refused(engine, field: str, **overrides) -> ValidationError:
	before = traces(engine)
	with pytest.raises(ValidationError) as info:
		submit(engine, **overrides)
	assert info.value.field == field
	assert str(info.value).startswith(f"{field}: ")
	assert traces(engine) == before
	return info.value


def test_names_sort_by_time_and_do_not_repeat(engine):
	"""Time-ordered names keep new rows on the primary key's newest (cached) pages."""
	assert new_name(at=1_700_000_000.001) < new_name(at=1_700_000_000.002)
	# 36 random bits: 1,000 names in one millisecond repeat once in 140,000 such bursts, as
	# new_name says; 100,000 of them did once in 14 runs (the birthday bound), a failing test
	same_millisecond = [new_name(at=1_700_000_000.5) for _ in range(1_000)]
	assert len(set(same_millisecond)) == len(same_millisecond)
	assert all(len(name) == 20 and int(name, 16) >= 0 for name in same_millisecond[:100])
	before, job_id, after = new_name(), submit(engine)["job_id"], new_name()
	assert before[:11] <= job_id[:11] <= after[:11]
	log_names = [row["name"] for row in engine.store.get_all(LOG, [("background_job", "=", job_id)])]
	assert all(before[:11] <= name[:11] <= after[:11] for name in log_names) and log_names


# -- validation -------------------------------------------------------------------------------


def test_a_valid_submit_is_queued_and_on_the_queue(engine):
	job = submit(engine, parameters={"value": "report.pdf"}, user="alice@example.com")

	assert job["status"] == "Queued"
	assert job["parameters"] == {"value": "report.pdf"}
	assert job["priority"] == "Normal"
	assert job["owner_user"] == "alice@example.com"
	assert job["max_retries"] == 2
	assert traces(engine) == (1, 1, 1)
	assert engine.queue.queues["Normal"].count == 1


BAD_SUBMITS = [
	("job_type", {"job_type": ""}),
	("job_type", {"job_type": None}),
	("job_type", {"job_type": "no_such_type"}),
	("organization", {"organization": ""}),
	("organization", {"organization": None}),
	("organization", {"organization": "Initech"}),
	("parameters", {"parameters": "{not json"}),
	("parameters", {"parameters": "[1, 2]"}),
	("parameters", {"parameters": '"just text"'}),
	("parameters", {"parameters": ["value", "a"]}),
	("parameters", {"parameters": 42}),
	("parameters", {"parameters": {"value": "x" * 70_000}}),
	("parameters", {"parameters": {"nope": 1}}),
	("parameters", {"parameters": {"ctx": "mine"}}),
	("parameters", {"parameters": {"value": float("nan")}}),
	("parameters", {"parameters": {"value": float("inf")}}),
	("parameters", {"parameters": '{"value": NaN}'}),
	("parameters", {"parameters": {"value": {1, 2}}}),
	("parameters", {"parameters": {1: "a", "value": "b"}}),
	("parameters", {"parameters": '{"value": ' + "[" * 50_000 + "]" * 50_000 + "}"}),
	("priority", {"priority": "Urgent"}),
	("priority", {"priority": "normal"}),
	("priority", {"priority": 3}),
	("depends_on", {"depends_on": "nosuchjob"}),
	("depends_on", {"depends_on": ["nosuchjob"]}),
	("user", {"user": ""}),
	("user", {"user": "   "}),
	("user", {"user": None}),
]


@pytest.mark.parametrize(("field", "overrides"), BAD_SUBMITS, ids=[f"{f}={o}"[:60] for f, o in BAD_SUBMITS])
def test_a_bad_field_is_named_and_leaves_no_trace(engine, field, overrides):
	assert_refused(engine, field, **overrides)
	assert traces(engine) == NO_TRACE


def test_a_disabled_job_type_is_refused(engine):
	engine.store.update("Job Type", "t_echo", {"is_enabled": 0})

	error = assert_refused(engine, "job_type")
	assert "disabled" in error.problem


def test_a_job_type_whose_handler_is_not_registered_is_refused(engine):
	# Given a Job Type row naming a handler no module here registered
	engine.store.insert(
		"Job Type", {"name": "ghost", "type_name": "ghost", "handler": "ghost.handler", "is_enabled": 1}
	)

	error = assert_refused(engine, "job_type", job_type="ghost", parameters={})
	assert "ghost.handler" in error.problem


def test_a_suspended_organization_is_refused(engine):
	admin.set_organization_status(engine, "Acme", "Suspended")

	error = assert_refused(engine, "organization")
	assert "Suspended" in error.problem

	admin.set_organization_status(engine, "Acme", "Active")
	assert submit(engine)["status"] == "Queued"


def test_parameters_that_do_not_fit_the_handler_name_the_handler(engine):
	error = assert_refused(engine, "parameters", parameters={"value": "a", "colour": "red"})
	assert "t_echo" in error.problem
	assert "colour" in error.problem


def test_parameters_exactly_at_the_size_limit_are_accepted(engine):
	# Given parameters whose JSON is exactly max_parameter_bytes long
	overhead = len(json.dumps({"value": ""}, sort_keys=True).encode())
	value = "x" * (engine.settings.max_parameter_bytes - overhead)

	assert submit(engine, parameters={"value": value})["status"] == "Queued"
	assert_refused(engine, "parameters", parameters={"value": value + "x"})


def test_parameters_may_be_given_as_a_json_string(engine):
	job = submit(engine, parameters='{"value": "from-json", "progress_steps": 2}')

	assert job["parameters"] == {"value": "from-json", "progress_steps": 2}


def test_depending_on_a_job_of_another_organization_is_refused_as_for_no_job(engine):
	parent = submit(engine, organization="Globex")

	elsewhere = assert_refused(
		engine, "depends_on", parameters={"value": "child"}, depends_on=parent["job_id"]
	)
	absent = assert_refused(
		engine, "depends_on", parameters={"value": "child"}, depends_on="0000000000000000"
	)
	assert elsewhere.problem.replace(parent["job_id"], "ID") == absent.problem.replace(
		"0000000000000000", "ID"
	)


def test_depending_on_a_canceled_job_is_refused(engine):
	parent = submit(engine)
	engine.cancel(parent["job_id"])

	error = assert_refused(engine, "depends_on", parameters={"value": "child"}, depends_on=parent["job_id"])
	assert "Canceled" in error.problem


def test_a_handlers_retry_on_and_give_up_on_decide_its_failures(engine):
	"""t_own_rules: its QuotaExceeded (caused by a ConnectionError, transient by the built-in map)
	goes straight to Dead Letter; its KeyError (permanent by the map) is retried."""
	quota = submit(engine, job_type="t_own_rules", parameters={"raise_": "quota"})
	assert run_in_process(engine, quota["job_id"]) == states.DEAD_LETTER
	assert engine.status(quota["job_id"])["error_type"] == "Permanent"
	miss = submit(engine, job_type="t_own_rules", parameters={"raise_": "miss"})
	assert run_in_process(engine, miss["job_id"]) == states.FAILED
	assert engine.status(miss["job_id"])["error_type"] == "Transient"


def test_depending_on_a_dead_lettered_job_is_refused(engine):
	parent = submit(engine, job_type="t_permanent", parameters={})
	assert run_in_process(engine, parent["job_id"]) == states.DEAD_LETTER

	error = assert_refused(engine, "depends_on", depends_on=parent["job_id"])
	assert "Dead Letter" in error.problem


# -- no trace, whatever the input -------------------------------------------------------------

ANY_JSON = st.recursive(
	st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
	lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
	max_leaves=6,
)
HANDLER_PARAMETERS = ("value", "progress_steps")
WHITESPACE = st.text(st.sampled_from(" \t\n\r\u00a0\u2003"), max_size=4)
NOT_STRINGS = st.none() | st.integers() | st.lists(st.text(), max_size=2) | st.booleans()


def fits_t_echo(text: str) -> bool:
	try:
		value = json.loads(text)
	except ValueError:
		return False
	return isinstance(value, dict) and set(value) <= set(HANDLER_PARAMETERS)


BAD_PARAMETERS = st.one_of(
	st.text().filter(lambda s: s != "" and not fits_t_echo(s)),
	ANY_JSON.filter(lambda v: v is not None and v != "" and not isinstance(v, dict)),
	ANY_JSON.filter(lambda v: v is not None and v != "" and not isinstance(v, dict)).map(json.dumps),
	st.dictionaries(
		st.text().filter(lambda k: k not in HANDLER_PARAMETERS), ANY_JSON, min_size=1, max_size=3
	),
	st.dictionaries(
		st.sampled_from(HANDLER_PARAMETERS), st.sampled_from([math.nan, math.inf, -math.inf]), min_size=1
	),
	st.sampled_from([{"value": b"bytes"}, {"value": object()}, {"value": {1, 2}}]),
)
BAD_FIELDS = st.one_of(
	st.tuples(st.just("job_type"), st.text().filter(lambda s: s not in registered_types()) | NOT_STRINGS),
	st.tuples(st.just("organization"), st.text().filter(lambda s: s not in ("Acme", "Globex")) | NOT_STRINGS),
	st.tuples(st.just("parameters"), BAD_PARAMETERS),
	st.tuples(
		st.just("priority"),
		st.text().filter(lambda s: s and s not in states.PRIORITIES)
		| st.integers().filter(bool)
		| st.lists(st.text(), min_size=1, max_size=2),
	),
	st.tuples(
		st.just("depends_on"),
		st.text(min_size=1) | st.integers().filter(bool) | st.lists(st.text(), min_size=1, max_size=2),
	),
	st.tuples(st.just("user"), WHITESPACE | NOT_STRINGS.filter(lambda v: not isinstance(v, str))),
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=BAD_FIELDS)
def test_no_bad_input_leaves_a_trace(engine, bad):
	field, value = bad

	with pytest.raises(ValidationError) as info:
		submit(engine, **{field: value})

	assert info.value.field == field
	assert traces(engine) == NO_TRACE


# -- duplicates -------------------------------------------------------------------------------


def test_the_same_job_while_unfinished_is_a_duplicate_naming_the_first(engine):
	first = submit(engine, parameters={"value": "a", "progress_steps": 3})

	with pytest.raises(DuplicateJob) as info:
		submit(engine, parameters={"progress_steps": 3, "value": "a"})

	assert info.value.existing_job == first["job_id"]
	assert info.value.existing_status == "Queued"
	assert first["job_id"] in str(info.value)
	assert traces(engine) == (1, 1, 1)


def test_parameters_as_json_text_are_the_same_job_as_the_dict(engine):
	first = submit(engine, parameters={"value": "a", "progress_steps": 3})

	with pytest.raises(DuplicateJob) as info:
		submit(engine, parameters='{ "progress_steps" : 3, "value" : "a" }')

	assert info.value.existing_job == first["job_id"]


def test_a_pending_job_is_a_duplicate_too(engine):
	parent = submit(engine, parameters={"value": "parent"})
	child = submit(engine, parameters={"value": "child"}, depends_on=parent["job_id"])

	with pytest.raises(DuplicateJob) as info:
		submit(engine, parameters={"value": "child"}, depends_on=parent["job_id"])

	assert (info.value.existing_job, info.value.existing_status) == (child["job_id"], "Pending")


def test_a_completed_job_within_the_deduplication_window_is_a_duplicate(engine):
	# Given a t_echo job (deduplication window 300 s) that has just completed
	first = submit(engine)
	assert run_in_process(engine, first["job_id"]) == states.COMPLETED

	# When the same job is submitted again
	with pytest.raises(DuplicateJob) as info:
		submit(engine)

	# Then the caller is pointed at the completed one
	assert (info.value.existing_job, info.value.existing_status) == (first["job_id"], "Completed")
	assert traces(engine)[0] == 1


def test_after_the_deduplication_window_the_same_job_is_accepted(engine):
	first = submit(engine)
	assert run_in_process(engine, first["job_id"]) == states.COMPLETED

	# When the window of 300 s has passed
	engine.now = lambda: utcnow() + timedelta(seconds=301)

	second = submit(engine)
	assert second["job_id"] != first["job_id"]
	assert second["status"] == "Queued"


def test_without_a_window_only_unfinished_jobs_are_duplicates(engine):
	# Given t_flaky, whose type has no deduplication window
	first = submit(engine, job_type="t_flaky", parameters={"failures": 0})
	with pytest.raises(DuplicateJob):
		submit(engine, job_type="t_flaky", parameters={"failures": 0})

	assert run_in_process(engine, first["job_id"]) == states.COMPLETED

	assert submit(engine, job_type="t_flaky", parameters={"failures": 0})["status"] == "Queued"


def test_the_same_job_for_another_organization_is_not_a_duplicate(engine):
	acme = submit(engine, organization="Acme")
	globex = submit(engine, organization="Globex")

	assert acme["job_id"] != globex["job_id"]
	assert traces(engine) == (2, 2, 2)


def test_different_parameters_or_types_are_not_duplicates(engine):
	submit(engine, parameters={"value": "a"})
	submit(engine, parameters={"value": "b"})
	submit(engine, parameters={"value": "a", "progress_steps": 1})
	submit(engine, job_type="t_flaky", parameters={})

	assert traces(engine)[0] == 4


# -- queue limits -----------------------------------------------------------------------------


def test_a_full_organization_queue_refuses_more_jobs_and_leaves_no_trace(engine):
	admin.add_organization(engine, "Tiny", max_queued_jobs=2)
	submit(engine, organization="Tiny", parameters={"value": "1"})
	submit(engine, organization="Tiny", parameters={"value": "2"})
	before = traces(engine)

	with pytest.raises(QueueFull) as info:
		submit(engine, organization="Tiny", parameters={"value": "3"})

	assert "Tiny" in str(info.value)
	assert "limit 2" in str(info.value)
	assert traces(engine) == before


def test_finished_jobs_free_their_place_in_the_queue(engine):
	admin.add_organization(engine, "Tiny", max_queued_jobs=2)
	first = submit(engine, organization="Tiny", parameters={"value": "1"})
	submit(engine, organization="Tiny", parameters={"value": "2"})

	assert run_in_process(engine, first["job_id"]) == states.COMPLETED

	assert submit(engine, organization="Tiny", parameters={"value": "3"})["status"] == "Queued"


def test_pending_jobs_count_against_the_queue_limit(engine):
	admin.add_organization(engine, "Tiny", max_queued_jobs=2)
	parent = submit(engine, organization="Tiny", parameters={"value": "1"})
	submit(engine, organization="Tiny", parameters={"value": "2"}, depends_on=parent["job_id"])

	with pytest.raises(QueueFull):
		submit(engine, organization="Tiny", parameters={"value": "3"})


def test_another_organizations_jobs_do_not_fill_the_queue(engine):
	admin.add_organization(engine, "Tiny", max_queued_jobs=1)
	submit(engine, organization="Acme", parameters={"value": "1"})

	assert submit(engine, organization="Tiny", parameters={"value": "1"})["status"] == "Queued"


def test_a_queue_limit_of_zero_means_no_limit(engine):
	admin.add_organization(engine, "Unlimited", max_queued_jobs=0)

	for n in range(5):
		submit(engine, organization="Unlimited", parameters={"value": str(n)})

	assert traces(engine)[0] == 5


# -- dependencies -----------------------------------------------------------------------------


def test_a_job_depending_on_an_unfinished_parent_waits_off_the_queue(engine):
	parent = submit(engine, parameters={"value": "parent"})

	child = submit(engine, parameters={"value": "child"}, depends_on=parent["job_id"])

	assert child["status"] == "Pending"
	assert child["depends_on"] == parent["job_id"]
	assert child["queued_at"] is None
	assert traces(engine) == (2, 2, 1)
	assert not engine.queue.is_waiting(f"{child['job_id']}-1")


def test_a_job_depending_on_a_completed_parent_is_queued_at_once(engine):
	parent = submit(engine, parameters={"value": "parent"})
	assert run_in_process(engine, parent["job_id"]) == states.COMPLETED
	messages_before = traces(engine)[2]

	child = submit(engine, parameters={"value": "child"}, depends_on=parent["job_id"])

	assert child["status"] == "Queued"
	assert traces(engine)[2] == messages_before + 1
	assert engine.queue.is_waiting(engine.get_job(child["job_id"])["queue_job_id"])


# -- permissions ------------------------------------------------------------------------------


def test_a_job_type_requiring_a_role_refuses_users_without_it(engine):
	with pytest.raises(PermissionDenied) as info:
		submit(engine, job_type="t_admin_only", parameters={}, roles={"Dartwing User"})

	assert "Dartwing Admin" in str(info.value)
	assert traces(engine) == NO_TRACE


def test_a_job_type_requiring_a_role_accepts_users_with_it(engine):
	job = submit(engine, job_type="t_admin_only", parameters={}, roles={"Dartwing User", "Dartwing Admin"})

	assert job["status"] == "Queued"


def test_trusted_callers_without_roles_may_submit_any_type(engine):
	assert submit(engine, job_type="t_admin_only", parameters={}, roles=None)["status"] == "Queued"


# -- identity and listing ---------------------------------------------------------------------


def test_every_job_gets_its_own_id(engine):
	ids = [submit(engine, parameters={"value": str(n)})["job_id"] for n in range(40)]

	assert len(set(ids)) == 40
	assert [engine.status(i)["parameters"]["value"] for i in ids] == [str(n) for n in range(40)]


@pytest.mark.parametrize(
	("field", "arguments"),
	[
		("limit", {"limit": 0}),
		("limit", {"limit": 101}),
		("limit", {"limit": -5}),
		("limit", {"limit": "20"}),
		("offset", {"offset": -1}),
		("offset", {"offset": "0"}),
		("status", {"status": "Done"}),
		("status", {"status": "queued"}),
	],
)
def test_list_jobs_refuses_bad_arguments(engine, field, arguments):
	with pytest.raises(ValidationError) as info:
		engine.list_jobs(**arguments)

	assert info.value.field == field


def test_list_jobs_accepts_the_boundaries(engine):
	submit(engine)

	assert engine.list_jobs(limit=1)["total"] == 1
	assert engine.list_jobs(limit=100, offset=0, status="Queued")["jobs"][0]["job_type"] == "t_echo"
	assert engine.list_jobs(offset=5)["jobs"] == []


@pytest.mark.parametrize("user", ["", "   ", "x" * 141, None])
def test_cancel_and_retry_name_a_bad_user_and_change_nothing(engine, user):
	job = engine.submit("t_echo", "Acme", {"value": "who"})
	for action in (engine.cancel, engine.retry):
		with pytest.raises(ValidationError) as caught:
			action(job["job_id"], user)
		assert caught.value.field == "user"
	assert engine.status(job["job_id"])["status"] == "Queued"
	assert len(engine.history(job["job_id"])["entries"]) == 1


@pytest.mark.parametrize("field", ["batch_size", "lease_seconds", "scheduler_interval"])
def test_settings_refuse_values_that_would_stall_the_engine(field):
	from dartwing.dartwing_core.background_jobs.settings import Settings

	with pytest.raises(ValueError, match=f"DARTWING_{field.upper()}"):
		Settings(**{field: 0})


def test_settings_are_coerced_by_their_declared_type_with_errors_naming_them():
	"""A float setting with an int default (lease_seconds = 60) takes 90.5 from the environment,
	and a site config's overrides get the same coercion and range checks (they used to pass raw)."""
	from dartwing.dartwing_core.background_jobs.settings import Settings

	settings = Settings.from_env({"DARTWING_LEASE_SECONDS": "90.5", "DARTWING_BATCH_SIZE": " 200 "})
	assert (settings.lease_seconds, settings.batch_size) == (90.5, 200)
	assert Settings.from_env({}, lease_seconds="45", batch_size=100.0).lease_seconds == 45.0
	for environ, overrides, named in [
		({"DARTWING_BATCH_SIZE": "10.5"}, {}, "DARTWING_BATCH_SIZE must be a whole number"),
		({"DARTWING_LEASE_SECONDS": "soon"}, {}, "DARTWING_LEASE_SECONDS must be a number"),
		({"DARTWING_LEASE_SECONDS": "inf"}, {}, "DARTWING_LEASE_SECONDS must be a finite number"),
		({}, {"lease_seconds": "0"}, "lease_seconds must be a positive number"),
		({}, {"batch_size": True}, "batch_size must be a number"),
		({}, {"queue_prefix": 7}, "queue_prefix must be a non-empty string"),
		({}, {"lease": 5}, "lease is not a setting"),
	]:
		with pytest.raises(ValueError, match=named):
			Settings.from_env(environ, **overrides)


# -- submits a user asked for: names, Critical, rate limits -------------------------------------


@pytest.mark.parametrize(
	("field", "value"),
	[
		("job_type", "t_echo\x00"),
		("job_type", "t_\ud800"),
		("organization", "Acme\x00"),
		("organization", "\ud800"),
		("depends_on", "\ud800"),
		("parameters", {"value": "\ud800"}),
		("parameters", {"\udfff": "x"}),
	],
)
def test_text_no_database_can_hold_is_refused_naming_the_field(engine, field, value):
	assert_refused(engine, field, **{field: value})


def test_a_list_offset_past_any_database_limit_is_bad_input(engine):
	with pytest.raises(ValidationError) as info:
		engine.list_jobs(offset=99999999999999999999999)
	assert info.value.field == "offset"


def test_the_job_type_is_stored_and_hashed_under_its_own_name(engine):
	"""The Job Type's row decides the spelling (MariaDB's collation matches other cases and
	trailing spaces); here the row is found by its exact name."""
	job = submit(engine, job_type="t_echo")
	assert engine.get_job(job["job_id"])["job_type"] == "t_echo"
	assert_refused(engine, "job_type", job_type="T_ECHO")


def test_critical_is_reserved_to_the_roles_the_job_type_names(engine):
	user = {"user": "u@example.com", "roles": {"Dartwing User"}}
	before = traces(engine)
	with pytest.raises(PermissionDenied, match="Critical"):
		submit(engine, priority="Critical", **user)
	assert traces(engine) == before
	assert submit(engine, priority="Critical", roles={"Dartwing Admin"})["priority"] == "Critical"
	assert submit(engine, priority="Critical", parameters={"value": "trusted"})["priority"] == "Critical"
	engine.store.update("Job Type", "t_echo", {"critical_roles": "Dartwing User\nOps"})
	job = submit(engine, priority="Critical", parameters={"value": "granted"}, **user)
	assert job["priority"] == "Critical"


def test_user_submits_are_rate_limited_per_user_and_per_organization(engine):
	engine.settings = dataclasses.replace(
		engine.settings, submit_limit_per_user=2, submit_limit_per_organization=3
	)
	alice = {"user": "alice@example.com", "roles": {"Dartwing User"}}
	bob = {"user": "bob@example.com", "roles": {"Dartwing User"}}
	for n in range(2):
		submit(engine, parameters={"value": f"a{n}"}, **alice)
	before = traces(engine)
	with pytest.raises(RateLimited) as info:
		submit(engine, parameters={"value": "a-over"}, **alice)
	assert 1 <= info.value.retry_after <= 61
	assert info.value.http_status == 429
	assert traces(engine) == before
	submit(engine, parameters={"value": "b0"}, **bob)  # another user: their own budget
	with pytest.raises(RateLimited, match="organization"):
		submit(engine, parameters={"value": "b1"}, **bob)  # Acme's fourth this minute
	submit(engine, organization="Globex", parameters={"value": "g"}, **bob)
	for n in range(5):  # trusted callers (CLI, a feature's Python) pass no roles: not limited
		submit(engine, parameters={"value": f"trusted{n}"})


def test_a_submit_refused_after_the_rate_check_spends_nothing(engine):
	"""Bad parameters fail before the count; a duplicate or a full queue is found after it, and
	must give the count back, or a user's retries of a refused submit would lock them out."""
	engine.settings = dataclasses.replace(engine.settings, submit_limit_per_user=2)
	alice = {"user": "alice@example.com", "roles": {"Dartwing User"}}
	submit(engine, parameters={"value": "once"}, **alice)
	for _ in range(3):
		with pytest.raises(DuplicateJob):
			submit(engine, parameters={"value": "once"}, **alice)
	engine.store.update("Organization", "Globex", {"max_queued_jobs": 1})
	submit(engine, organization="Globex", parameters={"value": "g"})
	for _ in range(3):
		with pytest.raises(QueueFull):
			submit(engine, organization="Globex", parameters={"value": "g2"}, **alice)
	submit(engine, parameters={"value": "twice"}, **alice)  # the second of two this minute
	with pytest.raises(RateLimited):
		submit(engine, parameters={"value": "thrice"}, **alice)


def test_an_organization_is_counted_stored_and_hashed_under_its_own_name(any_engine):
	"""MariaDB's collation finds `acme ` for Acme: the job still says Acme, the duplicate guard
	sees the same work, and the organization's rate limit is one budget however it is spelled."""
	engine = any_engine
	engine.settings = dataclasses.replace(engine.settings, submit_limit_per_organization=2)
	admin = {"user": "admin@example.com", "roles": {"Dartwing Admin"}}
	job = submit(engine, **admin)
	assert engine.get_job(job["job_id"])["organization"] == "Acme"
	if engine.store.get("Organization", "acme ") is None:
		pytest.skip("this database compares names exactly: there is no other spelling to canonicalise")
	with pytest.raises(DuplicateJob):
		submit(engine, organization="acme ", **admin)
	other = submit(engine, organization="ACME", parameters={"value": "b"}, **admin)
	assert engine.get_job(other["job_id"])["organization"] == "Acme"
	with pytest.raises(RateLimited, match="organization 'Acme'"):
		submit(engine, organization="acme", parameters={"value": "c"}, **admin)


# -- fairness between organizations ---------------------------------------------------------------


def _queued_job_ids(engine, priority: str = "Normal") -> list[str]:
	return [message_id.rsplit("-", 1)[0] for message_id in engine.queue.queues[priority].job_ids]


def test_an_organization_at_its_in_flight_limit_waits_behind_the_others(engine):
	"""Acme may have one job queued or running: its second waits as Pending and, when the first
	ends, goes to the back of the queue, behind Globex's job submitted meanwhile."""
	engine.store.update("Organization", "Acme", {"max_in_flight_jobs": 1})
	first = submit(engine, parameters={"value": "1"})
	second = submit(engine, parameters={"value": "2"})
	other = submit(engine, organization="Globex", parameters={"value": "g"})
	assert [first["status"], second["status"], other["status"]] == ["Queued", "Pending", "Queued"]
	assert _queued_job_ids(engine) == [first["job_id"], other["job_id"]]

	assert run_in_process(engine, first["job_id"]) == states.COMPLETED

	assert engine.get_job(second["job_id"])["status"] == states.QUEUED
	assert _queued_job_ids(engine)[-2:] == [other["job_id"], second["job_id"]]
	history = [row["message"] for row in engine.history(second["job_id"])["entries"]]
	assert history[-1] == "Organization has room in flight"


def test_the_scheduler_releases_a_waiting_job_when_room_frees_up_otherwise(engine):
	from dartwing.dartwing_core.background_jobs import scheduler

	engine.store.update("Organization", "Acme", {"max_in_flight_jobs": 1})
	first = submit(engine, parameters={"value": "1"})
	second = submit(engine, parameters={"value": "2"})
	third = submit(engine, parameters={"value": "3"})
	assert scheduler.release_pending(engine) == 0  # still full: nothing moves
	engine.cancel(first["job_id"])
	assert scheduler.release_pending(engine) == 1  # one place: the oldest waiting job
	assert engine.get_job(second["job_id"])["status"] == states.QUEUED
	assert engine.get_job(third["job_id"])["status"] == states.PENDING


def test_retries_of_an_organization_at_its_in_flight_limit_wait_for_room(engine):
	"""Failing jobs must not all come back at once past the limit: a due retry waits while its
	organization is full, and goes when there is room."""
	from dartwing.dartwing_core.background_jobs import scheduler

	engine.store.update("Organization", "Acme", {"max_in_flight_jobs": 1})
	failing = submit(engine, job_type="t_flaky", parameters={"failures": 1})
	assert run_in_process(engine, failing["job_id"]) == states.FAILED
	busy = submit(engine, parameters={"value": "busy"})
	assert busy["status"] == states.QUEUED  # the failed job is not in flight: room for this one
	engine.store.update(JOB, failing["job_id"], {"next_retry_at": engine.now() - timedelta(seconds=1)})

	assert scheduler.requeue_due_retries(engine) == 0  # Acme is full: the retry waits
	assert engine.get_job(failing["job_id"])["status"] == states.FAILED
	engine.cancel(busy["job_id"])
	assert scheduler.requeue_due_retries(engine) == 1
	assert engine.get_job(failing["job_id"])["status"] == states.QUEUED
