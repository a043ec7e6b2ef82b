"""The engine's Queue over frappe.enqueue: site-namespaced RQ messages that `bench worker` (or
`bench dartwing-worker`) runs through tasks.run_job."""

from collections.abc import Sequence

import frappe
from frappe.utils.background_jobs import create_job_id, get_queues_timeout, get_redis_conn
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError

from ..ports import Message
from .frappe_store import in_open_transaction
from .rq_queue import BACKSTOP_SECONDS, message_waiting, messages_waiting

RUN_JOB = "dartwing.dartwing_core.tasks.run_job"
# Messages enqueued before the entry points moved to tasks.py name the old path (it still works).
RUN_JOB_PATHS = frozenset({RUN_JOB, "dartwing.dartwing_core.background_jobs.backends.frappe_backend.run_job"})
# One RQ queue per priority; a bench declares them under `workers` in common_site_config.json
# and lists them first to last in `bench worker --queue`. Without them, the stock queues serve.
PRIORITY_QUEUES = {
	"Critical": "dartwing_critical",
	"High": "dartwing_high",
	"Normal": "dartwing_normal",
	"Low": "dartwing_low",
}
STOCK_QUEUES = {"Critical": "short", "High": "short", "Normal": "default", "Low": "long"}


class FrappeQueue:
	"""RQ through frappe.enqueue: site-namespaced message ids, run by `bench worker`."""

	def queue_for(self, priority: str) -> str:
		queue = PRIORITY_QUEUES[priority]
		return queue if queue in get_queues_timeout() else STOCK_QUEUES[priority]

	def enqueue(self, job_id: str, queue_job_id: str, priority: str, timeout: int) -> None:
		frappe.enqueue(
			RUN_JOB,
			queue=self.queue_for(priority),
			timeout=(timeout or 0) + BACKSTOP_SECONDS,
			job_id=queue_job_id,
			enqueue_after_commit=in_open_transaction(),
			background_job=job_id,
			message_id=queue_job_id,
		)

	def enqueue_many(self, messages: Sequence[Message]) -> None:
		"""frappe.enqueue has no pipeline: one call each, as the Frappe way of enqueueing goes."""
		for message in messages:
			self.enqueue(*message)

	def is_waiting(self, queue_job_id: str) -> bool:
		return message_waiting(get_redis_conn(), create_job_id(queue_job_id))

	def waiting(self, queue_job_ids: Sequence[str]) -> set[str]:
		rq_ids = {create_job_id(queue_job_id): queue_job_id for queue_job_id in queue_job_ids}
		return {rq_ids[rq_id] for rq_id in messages_waiting(get_redis_conn(), list(rq_ids))}

	def stop(self, queue_job_id: str) -> None:
		try:
			send_stop_job_command(get_redis_conn(), create_job_id(queue_job_id))
		except (NoSuchJobError, InvalidJobOperation):
			pass  # not running anywhere: nothing to stop
