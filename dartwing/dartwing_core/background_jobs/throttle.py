"""Submit rate limits per user and per organization, counted in Redis in one-minute windows.

Keyed by who submits, not by where the request came from: a shared IP, a forged
X-Forwarded-For header or another URL to the same method change nothing. A fixed window lets a
caller spend up to twice the limit across a window's edge; that is the price of one round trip."""

import logging
import time
from typing import TYPE_CHECKING

from .errors import RateLimited

if TYPE_CHECKING:
	from .engine import Engine

logger = logging.getLogger("dartwing.jobs")

WINDOW_SECONDS = 60


def admit(engine: "Engine", user: str, organization: str) -> list[str] | None:
	"""Count one submit for `user` and `organization`; RateLimited if either is over its limit.
	Returns the counters it raised, for `refund` when the submit is refused later."""
	limits = [
		("user", user, engine.settings.submit_limit_per_user),
		("organization", organization, engine.settings.submit_limit_per_organization),
	]
	limits = [limit for limit in limits if limit[1] and limit[2]]
	if not limits or engine.lock_client is None:
		return None
	now = time.time()
	window = int(now // WINDOW_SECONDS)
	keys = {kind: f"{engine.settings.queue_prefix}:submits:{kind}:{who}:{window}" for kind, who, _ in limits}
	pipe = engine.lock_client.pipeline(transaction=False)
	for kind, _, _ in limits:
		pipe.incr(keys[kind])
		pipe.expire(keys[kind], 2 * WINDOW_SECONDS)
	try:
		counts = pipe.execute()[::2]
	except Exception:  # Redis down: submits go on (the scheduler dispatches them later)
		logger.warning("Submit rate limits not counted: Redis did not answer", exc_info=True)
		return None
	for (kind, who, limit), count in zip(limits, counts, strict=True):
		if count > limit:
			# A refused submit uses up nothing: neither its user's budget nor its organization's.
			refund(engine, list(keys.values()))
			retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now) + 1)
			raise RateLimited(f"{kind} {who!r} may submit {limit} jobs a minute", retry_after)
	return list(keys.values())


def refund(engine: "Engine", keys: list[str] | None) -> None:
	"""Give back what `admit` counted, for a submit refused after it (bad input, duplicate, quota)."""
	if not keys:
		return
	undo = engine.lock_client.pipeline(transaction=False)
	for key in keys:
		undo.decr(key)
	try:
		undo.execute()
	except Exception:
		logger.warning("Submit rate limits not refunded: Redis did not answer", exc_info=True)
