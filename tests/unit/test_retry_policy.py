"""Backoff schedules and the stop rule: pure functions of the policy, the attempt and a random draw."""

import random
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dartwing.dartwing_core.background_jobs.registry import JobTypeSpec
from dartwing.dartwing_core.background_jobs.retry import (
	PERMANENT,
	TRANSIENT,
	RetryPolicy,
	backoff_delay,
	next_retry_delay,
)

NO_JITTER = replace(RetryPolicy(), jitter=0)


def schedule(policy: RetryPolicy, rand=random.random) -> list[float | None]:
	"""The delays a job would wait after each failed attempt, until it is dead-lettered."""
	return [next_retry_delay(policy, done, TRANSIENT, rand) for done in range(policy.max_retries + 1)]


def test_default_policy_doubles_from_one_minute_and_stops_after_five_retries():
	assert schedule(NO_JITTER) == [60, 120, 240, 480, 960, None]


def test_default_policy_centres_on_the_same_schedule_when_the_jitter_draw_is_neutral():
	# Given the default policy (10 % jitter) and a random draw in the middle of its range
	# Then the delays are the plain 1, 2, 4, 8, 16 minutes
	assert schedule(RetryPolicy(), rand=lambda: 0.5) == [60, 120, 240, 480, 960, None]


def test_jitter_spreads_jobs_that_failed_together():
	delays = {backoff_delay(RetryPolicy(), 1) for _ in range(50)}
	assert len(delays) > 1
	assert all(54 <= d <= 66 for d in delays)


@given(
	base=st.floats(min_value=0, max_value=10_000),
	jitter=st.floats(min_value=0, max_value=1),
	retry_number=st.integers(min_value=1, max_value=30),
	draw=st.floats(min_value=0, max_value=1, exclude_max=True),
	strategy=st.sampled_from(["exponential", "linear", "fixed"]),
)
def test_jitter_stays_within_its_fraction_of_the_delay(base, jitter, retry_number, draw, strategy):
	policy = RetryPolicy(strategy=strategy, base_delay=base, max_delay=float("inf"), jitter=jitter)
	plain = backoff_delay(replace(policy, jitter=0), retry_number)

	delay = backoff_delay(policy, retry_number, rand=lambda: draw)

	rounding = 1e-9 * max(plain, 1)
	assert plain * (1 - jitter) - rounding <= delay <= plain * (1 + jitter) + rounding
	assert delay >= 0


@given(
	base=st.floats(min_value=0, max_value=10_000),
	max_delay=st.floats(min_value=0, max_value=10_000),
	jitter=st.floats(min_value=0, max_value=1),
	retry_number=st.integers(min_value=1, max_value=30),
	draw=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_no_delay_ever_exceeds_max_delay_even_with_jitter(base, max_delay, jitter, retry_number, draw):
	policy = RetryPolicy(base_delay=base, max_delay=max_delay, jitter=jitter)
	assert backoff_delay(policy, retry_number, rand=lambda: draw) <= max_delay


def test_linear_strategy_adds_the_base_delay_each_retry():
	policy = RetryPolicy(max_retries=4, strategy="linear", base_delay=30, jitter=0)
	assert schedule(policy) == [30, 60, 90, 120, None]


def test_fixed_strategy_waits_the_same_each_retry():
	policy = RetryPolicy(max_retries=3, strategy="fixed", base_delay=45, jitter=0)
	assert schedule(policy) == [45, 45, 45, None]


def test_max_delay_caps_the_growth():
	policy = RetryPolicy(max_retries=6, base_delay=60, max_delay=300, jitter=0)
	assert schedule(policy) == [60, 120, 240, 300, 300, 300, None]


def test_max_delay_caps_jittered_delays_at_the_ceiling():
	# Given a delay already at the cap and the highest possible jitter draw
	policy = RetryPolicy(base_delay=600, max_delay=300, jitter=0.5)

	# Then the job still waits no longer than max_delay, and jitter can only shorten the wait
	assert backoff_delay(policy, 1, rand=lambda: 0.999) == 300
	assert backoff_delay(policy, 1, rand=lambda: 0.0) == 150


@pytest.mark.parametrize("retries_done", [0, 1, 4])
def test_permanent_errors_never_retry(retries_done):
	assert next_retry_delay(NO_JITTER, retries_done, PERMANENT) is None


@pytest.mark.parametrize(("max_retries", "retries_done"), [(0, 0), (3, 3), (3, 4)])
def test_exhausted_retries_stop(max_retries, retries_done):
	policy = replace(NO_JITTER, max_retries=max_retries)
	assert next_retry_delay(policy, retries_done, TRANSIENT) is None


def test_last_allowed_retry_still_gets_a_delay():
	policy = replace(NO_JITTER, max_retries=3)
	assert next_retry_delay(policy, 2, TRANSIENT) == 240


def test_policy_from_a_job_type_row_uses_its_settings():
	row = JobTypeSpec(
		"export", "export", max_retries=7, retry_strategy="linear", base_delay=15, max_delay=40, jitter=0
	).as_job_type_row()

	policy = RetryPolicy.from_job_type(row)

	assert policy == RetryPolicy(max_retries=7, strategy="linear", base_delay=15, max_delay=40, jitter=0)
	assert schedule(policy) == [15, 30, 40, 40, 40, 40, 40, None]


def test_job_type_defaults_match_the_default_policy():
	assert RetryPolicy.from_job_type(JobTypeSpec("export", "export").as_job_type_row()) == RetryPolicy()


def test_the_jobs_own_max_retries_wins_over_the_types_current_one():
	# Given a job submitted when its type allowed 5 retries, and the type since changed to 1
	row = {**JobTypeSpec("export", "export", jitter=0).as_job_type_row(), "max_retries": 1}

	# Then the job keeps the budget it was submitted with, including a budget of zero
	assert RetryPolicy.from_job_type(row, max_retries=5).max_retries == 5
	assert RetryPolicy.from_job_type(row, max_retries=0).max_retries == 0
	assert RetryPolicy.from_job_type(row).max_retries == 1


def test_a_job_type_row_without_a_strategy_backs_off_exponentially():
	policy = RetryPolicy.from_job_type({"max_retries": 3, "base_delay": 10, "jitter": 0})
	assert schedule(policy) == [10, 20, 40, None]
