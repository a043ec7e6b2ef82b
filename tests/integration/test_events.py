"""Redis events: a job's watchers and its organization's watchers each hear one PUBLISH, and an
organization's watchers never hear another organization's jobs, whatever the names hold."""

import threading
import uuid

from redis import Redis

from dartwing.dartwing_core.background_jobs.backends.redis_events import RedisEvents


def collect(events: RedisEvents, ready: threading.Event, into: list, **scope) -> threading.Thread:
	"""Subscribe in a thread and gather events until a None (0.5 s of silence) after the first."""

	def listen():
		stream = events.subscribe(**scope, idle=0.5)
		next(stream)  # the first idle tick: the subscription is in place
		ready.set()
		for event in stream:
			if event is None and into:
				return
			if event is not None:
				into.append((event["organization"], event["job_id"]))

	thread = threading.Thread(target=listen, daemon=True)
	thread.start()
	return thread


def test_job_and_organization_watchers_hear_only_their_own_events(redis_url):
	events = RedisEvents(Redis.from_url(redis_url), prefix=f"evt-{uuid.uuid4().hex[:6]}")
	organizations = ["a", "a:b", "a*", "a%3Ab", "b"]  # a prefix, a colon, a glob, an encoded look-alike
	scopes = {
		"job a-1": {"job_id": "a-1"},
		**{f"org {org}": {"organization": org} for org in organizations},
	}
	heard = {name: [] for name in scopes}
	readies = {name: threading.Event() for name in scopes}
	threads = [collect(events, readies[name], heard[name], **scope) for name, scope in scopes.items()]
	for ready in readies.values():
		assert ready.wait(10), "a subscriber did not start"

	for org in organizations:
		for n in (1, 2):
			events.publish("job_status_changed", {"job_id": f"{org}-{n}", "organization": org})
	for thread in threads:
		thread.join(10)

	assert heard["job a-1"] == [("a", "a-1")]
	for org in organizations:
		assert heard[f"org {org}"] == [(org, f"{org}-1"), (org, f"{org}-2")], org
