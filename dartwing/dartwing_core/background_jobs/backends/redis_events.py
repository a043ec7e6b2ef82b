"""Events port over Redis pub/sub: one channel per job and one per organization."""

import json
from collections.abc import Iterator

from redis import Redis


class RedisEvents:
	def __init__(self, redis: Redis, prefix: str = "dartwing"):
		self.redis = redis
		self.prefix = prefix

	def job_channel(self, job_id: str) -> str:
		return f"{self.prefix}:events:job:{job_id}"

	def org_channel(self, organization: str) -> str:
		return f"{self.prefix}:events:org:{organization}"

	def publish(self, event: str, payload: dict) -> None:
		message = json.dumps({"event": event, **payload}, default=str)
		pipe = self.redis.pipeline(transaction=False)
		pipe.publish(self.job_channel(payload["job_id"]), message)
		if payload.get("organization"):
			pipe.publish(self.org_channel(payload["organization"]), message)
		pipe.execute()

	def subscribe(
		self, job_id: str | None = None, organization: str | None = None, idle: float = 0.5
	) -> Iterator[dict | None]:
		"""Yield events as they come, and None after each `idle` seconds of silence so the caller
		can re-check the database (pub/sub drops messages nobody was listening for)."""
		pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
		pubsub.subscribe(self.job_channel(job_id) if job_id else self.org_channel(organization))
		try:
			while True:
				message = pubsub.get_message(timeout=idle)
				yield json.loads(message["data"]) if message else None
		finally:
			pubsub.close()
