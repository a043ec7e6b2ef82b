"""Events port over Redis pub/sub: one channel per job, named after its organization too, so a
job's watchers and its organization's watchers (pattern subscriptions) hear one PUBLISH."""

import json
import re
from collections.abc import Iterator, Sequence
from urllib.parse import quote

from redis import Redis

_GLOB_SPECIALS = re.compile(r"([*?\[\]\\])")


def _glob_escape(text: str) -> str:
	return _GLOB_SPECIALS.sub(r"\\\1", text)


class RedisEvents:
	def __init__(self, redis: Redis, prefix: str = "dartwing"):
		self.redis = redis
		self.prefix = prefix

	def channel(self, organization: str, job_id: str) -> str:
		"""`<prefix>:events:<organization, percent-encoded>:<job>`: the encoding leaves no ':' in
		the organization part, so a pattern for one organization never matches another's."""
		return f"{self.prefix}:events:{quote(organization or '', safe='')}:{job_id}"

	def job_pattern(self, job_id: str) -> str:
		return f"{_glob_escape(self.prefix)}:events:*:{_glob_escape(job_id)}"

	def org_pattern(self, organization: str) -> str:
		return f"{_glob_escape(self.channel(organization, ''))}*"

	def publish(self, event: str, payload: dict) -> None:
		self.redis.publish(*self._message(event, payload))  # every transition: one command, no pipeline

	def publish_many(self, events: Sequence[tuple[str, dict]]) -> None:
		pipe = self.redis.pipeline(transaction=False)
		for event, payload in events:
			pipe.publish(*self._message(event, payload))
		pipe.execute()

	def _message(self, event: str, payload: dict) -> tuple[str, str]:
		"""(channel, message) of one event."""
		message = json.dumps({"event": event, **payload}, default=str)
		return self.channel(payload.get("organization"), payload["job_id"]), message

	def subscribe(
		self, job_id: str | None = None, organization: str | None = None, idle: float = 0.5
	) -> Iterator[dict | None]:
		"""Yield events as they come, and None once the server has confirmed the subscription
		(and again after a reconnection) and after each `idle` seconds of silence: the caller's cue
		to re-read the database, since pub/sub drops messages nobody was listening for."""
		pubsub = self.redis.pubsub()
		pubsub.psubscribe(self.job_pattern(job_id) if job_id else self.org_pattern(organization))
		try:
			while True:
				message = pubsub.get_message(timeout=idle)
				if message is None or message["type"] == "psubscribe":
					yield None
				elif message["type"] == "pmessage":
					yield json.loads(message["data"])
		finally:
			pubsub.close()
