"""A Redis lock (SET NX with a token and a TTL) so that any number of schedulers, on any number of
machines, run each periodic task once. Reusable as a decorator for any periodic task."""

import functools
import logging
import secrets
from collections.abc import Callable

logger = logging.getLogger("dartwing.jobs")

# Delete the key only if it still holds our token: never release a lock another process now owns.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class RedisLock:
	def __init__(self, client, key: str, ttl: float):
		self.client = client
		self.key = key
		self.ttl_ms = int(ttl * 1000)
		self.token = secrets.token_hex(16)

	def acquire(self) -> bool:
		return bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))

	def release(self) -> bool:
		return bool(self.client.eval(_RELEASE, 1, self.key, self.token))


def distributed_lock(name: str, ttl: float = 60, client: Callable | None = None, release: bool = True):
	"""Run the decorated function only while holding lock `name`; return None when another process
	holds it. `client` returns a redis client; by default the lock_client of the engine passed as
	first argument (else of the process's engine), and the key carries its queue prefix.
	The TTL bounds how long a crashed holder blocks the others: keep each run shorter than it.
	With release=False the lock stays until its TTL after a successful run: "at most once per
	TTL" for daily work; a run that raises releases it so the next pass tries again."""

	def decorate(func):
		@functools.wraps(func)
		def wrapper(*args, **kwargs):
			if client is not None:
				redis, prefix = client(), "dartwing"
			else:
				from . import runtime

				engine = args[0] if args and hasattr(args[0], "lock_client") else runtime.current()
				redis, prefix = engine.lock_client, engine.settings.queue_prefix
			lock = RedisLock(redis, f"{prefix}:lock:{name}", ttl)
			if not lock.acquire():
				logger.debug("Skipped %s: another process holds its lock", name)
				return None
			try:
				result = func(*args, **kwargs)
			except BaseException:
				lock.release()  # a failed run must not block the next one for the whole TTL
				raise
			if release:
				lock.release()
			return result

		return wrapper

	return decorate
