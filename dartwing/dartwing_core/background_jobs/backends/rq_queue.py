"""Queue port over RQ: one RQ queue per priority, drained by workers in priority order."""

import logging
from collections import Counter
from collections.abc import Sequence
from itertools import chain

from redis import Redis
from redis.exceptions import ResponseError
from rq import Queue as RQQueue
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.utils import get_version

from ..ports import Message
from ..states import PRIORITIES

logger = logging.getLogger("dartwing.jobs")
EXECUTE = "dartwing.dartwing_core.background_jobs.executor.run"
# RQ's own timeout is a backstop behind the executor's deadline, which fires first and is handled.
BACKSTOP_SECONDS = 30
WAITING = {"queued", "started", "deferred", "scheduled"}


def message_waiting(redis: Redis, rq_job_id: str) -> bool:
	"""True while RQ holds the message queued, scheduled or running (RQ 1.15 to 3)."""
	return bool(messages_waiting(redis, [rq_job_id]))


def messages_waiting(redis: Redis, rq_job_ids: Sequence[str]) -> set[str]:
	"""The ids RQ holds queued, scheduled or running: three pipelined round trips for any number,
	where asking one by one costs a backlog of thousands as many round trips every scheduler tick."""
	pipe = redis.pipeline(transaction=False)
	for rq_job_id in rq_job_ids:
		pipe.hmget(Job.key_for(rq_job_id), "status", "origin")
	records = pipe.execute()
	waiting, listed = set(), []
	for rq_job_id, (status, origin) in zip(rq_job_ids, records, strict=True):
		status = _text(status)
		if status == "queued":
			if origin:  # a record without its queue is no message a worker can find
				listed.append((rq_job_id, _text(origin)))
		elif status in WAITING:
			waiting.add(rq_job_id)
	if listed:
		waiting.update(_in_their_lists(redis, listed))
	return waiting


# A queue's list up to this many entries per id asked about is read whole and searched in Python;
# a longer one is asked about each id with LPOS. Parsing one reply per id costs more than reading
# a short list, which a page of 500 ids behind a few thousand queued meets every tick.
READ_WHOLE_PER_ID = 20


def _in_their_lists(redis: Redis, listed: list[tuple[str, str]]) -> set[str]:
	"""Which of (id, origin) are still in their queue's list (or in the list RQ 2 moves an id to
	while a worker dequeues it): "queued" only says what the record claims."""
	lists = {origin: _list_keys(redis, origin) for origin in {origin for _, origin in listed}}
	asked = Counter(key for _, origin in listed for key in lists[origin])
	pipe = redis.pipeline(transaction=False)
	for key in asked:
		pipe.llen(key)
	lengths = dict(zip(asked, pipe.execute(), strict=True))
	whole = [key for key in asked if 0 < lengths[key] <= READ_WHOLE_PER_ID * asked[key]]
	searched = [
		(rq_job_id, key)
		for rq_job_id, origin in listed
		for key in lists[origin]
		if lengths[key] and key not in whole
	]
	for key in whole:
		pipe.lrange(key, 0, -1)
	for rq_job_id, key in searched:
		pipe.lpos(key, rq_job_id)
	answers = pipe.execute()
	members = {_text(entry) for entry in chain.from_iterable(answers[: len(whole)])}
	found = {
		rq_job_id
		for (rq_job_id, _), at in zip(searched, answers[len(whole) :], strict=True)
		if at is not None
	}
	return {rq_job_id for rq_job_id, _ in listed if rq_job_id in members or rq_job_id in found}


def _list_keys(redis: Redis, origin: str) -> list[str]:
	queue = RQQueue(origin, connection=redis)
	return [key for key in (queue.key, getattr(queue, "intermediate_queue_key", None)) if key]


def _text(value: bytes | str | None) -> str | None:
	return value.decode() if isinstance(value, bytes) else value


class PriorityQueue(RQQueue):
	"""An RQ queue whose workers, when they poll without blocking (burst mode), take the first job
	of the highest priority in one round trip. RQ asks each queue in turn with its own LPOP, so a
	Low job costs four; Redis 7's LMPOP reads the keys in the order given, as those LPOPs do. A
	blocking wait (a worker not in burst mode) is RQ's single BLPOP over every queue already."""

	lmpop_refused = False  # a server that says it is Redis 7 yet does not know LMPOP

	@classmethod
	def lpop(
		cls, queue_keys: Sequence[str], timeout: int | None, connection: Redis | None = None
	) -> tuple[bytes | str, bytes | str] | None:
		if (
			timeout is not None
			or len(queue_keys) < 2
			or cls.lmpop_refused
			or get_version(connection) < (7, 0, 0)
		):
			return super().lpop(queue_keys, timeout, connection=connection)
		try:
			popped = connection.lmpop(len(queue_keys), *queue_keys, direction="LEFT")
		except ResponseError:
			logger.warning("The Redis server refused LMPOP; polling each queue with LPOP", exc_info=True)
			PriorityQueue.lmpop_refused = True
			return super().lpop(queue_keys, timeout, connection=connection)
		if popped is None:
			return None
		queue_key, (job_id,) = popped
		return queue_key, job_id


class RqQueue:
	def __init__(self, redis: Redis, prefix: str = "dartwing"):
		self.redis = redis
		self.queues = {p: PriorityQueue(f"{prefix}-{p.lower()}", connection=redis) for p in PRIORITIES}

	def in_priority_order(self) -> list[PriorityQueue]:
		return [self.queues[p] for p in PRIORITIES]

	def enqueue(self, job_id: str, queue_job_id: str, priority: str, timeout: int) -> None:
		self.queues[priority].enqueue_call(**self._call(job_id, queue_job_id, priority, timeout))

	def enqueue_many(self, messages: Sequence[Message]) -> None:
		"""One pipeline for the lot: a scheduler batch of 100 retries is one round trip, not 100."""
		pipe = self.redis.pipeline()
		for message in messages:
			self.queues[message.priority].enqueue_call(pipeline=pipe, **self._call(*message))
		pipe.execute()

	def _call(self, job_id: str, queue_job_id: str, priority: str, timeout: int) -> dict:
		return {
			"func": EXECUTE,
			"args": (job_id, queue_job_id),
			"job_id": queue_job_id,
			"timeout": (timeout or 0) + BACKSTOP_SECONDS,
			"result_ttl": 0,  # the database keeps the outcome
			"failure_ttl": 24 * 3600,
			"description": f"dartwing job {job_id}",
		}

	def is_waiting(self, queue_job_id: str) -> bool:
		return message_waiting(self.redis, queue_job_id)

	def waiting(self, queue_job_ids: Sequence[str]) -> set[str]:
		return messages_waiting(self.redis, queue_job_ids)

	def stop(self, queue_job_id: str) -> None:
		try:
			send_stop_job_command(self.redis, queue_job_id)
		except (NoSuchJobError, InvalidJobOperation):
			pass  # not running anywhere: nothing to stop

	def depth(self) -> dict[str, int]:
		return {p: q.count for p, q in self.queues.items()}
