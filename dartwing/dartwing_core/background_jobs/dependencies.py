"""Pending jobs and what releases them. depends_on: a child starts when its parent completes and
is canceled, with the reason logged, when the parent ends any other way. An organization's
`max_in_flight_jobs`: a job submitted while that many of its organization's jobs are queued or
running waits as Pending, and is queued (at the back) as they end, so one organization's backlog
cannot hold every worker while another's jobs wait."""

from typing import TYPE_CHECKING

from . import states
from .transitions import JOB, transition

if TYPE_CHECKING:
	from .engine import Engine


def settle_children(engine: "Engine", parent: dict, children: list[str], actor: str = "scheduler") -> int:
	"""Release or cancel the Pending jobs named `children` of a parent that just ended, logged as
	done by `actor` (whoever ended the parent). Returns how many moved."""
	moved = 0
	for name in children:
		child = engine.store.get(JOB, name)
		if (
			child is not None
			and child["status"] == states.PENDING
			and settle_pending(engine, child, parent, actor)
		):
			moved += 1
	return moved


def settle_pending(
	engine, job: dict, parent: dict | None = None, actor: str = "scheduler", room: "Room | None" = None
) -> dict | None:
	"""Queue a Pending job whose way is clear, cancel one whose parent failed, else leave it.
	`room` remembers organizations found full, for a caller going through many jobs."""
	if job.get("depends_on"):
		parent = parent or engine.store.get(JOB, job["depends_on"])
		if parent is None or parent["status"] in (states.CANCELED, states.DEAD_LETTER):
			reason = f"parent job {job['depends_on']} " + (
				"was purged" if parent is None else f"ended {parent['status']}"
			)
			return transition(
				engine,
				job,
				states.CANCELED,
				actor=actor,
				message=f"Canceled: {reason}",
				values={"canceled_at": engine.now(), "canceled_by": actor, "error_message": reason},
			)
		if parent["status"] != states.COMPLETED:
			return None
	org = engine.store.get("Organization", job["organization"])
	if org is not None and org["status"] != "Active":
		return None  # a suspended organization's jobs wait; a deleted one's fail in the executor
	if org is not None and not (room or Room(engine)).has_room(org):
		return None
	if job.get("depends_on"):
		message = f"Dependency {job['depends_on']} completed"
	elif org is not None and org.get("max_in_flight_jobs"):
		message = "Organization has room in flight"
	else:
		message = "Organization active again"
	return engine.requeue(job, actor=actor, message=message)


def at_flight_limit(engine: "Engine", org: dict, adding: int = 0) -> bool:
	"""True when `org` has as many jobs queued or running as its max_in_flight_jobs (0: never),
	counting `adding` more about to be queued. A soft limit: two releases racing may both pass it."""
	limit = int(org.get("max_in_flight_jobs") or 0)
	if not limit:
		return False
	in_flight = engine.store.count(
		JOB, [("organization", "=", org["name"]), ("status", "in", [states.QUEUED, states.RUNNING])]
	)
	return in_flight + adding >= limit


class Room:
	"""Which organizations are at their in-flight limit, each asked once a pass: a scheduler
	task going through many jobs skips the rest of a full organization's without asking again."""

	def __init__(self, engine: "Engine"):
		self.engine = engine
		self.full: set[str] = set()

	def known_full(self, organization: str) -> bool:
		return organization in self.full

	def has_room(self, org: dict, adding: int = 0) -> bool:
		"""`adding`: jobs of `org` this pass is about to queue, not committed yet."""
		if org["name"] in self.full:
			return False
		if at_flight_limit(self.engine, org, adding):
			self.full.add(org["name"])
			return False
		return True


def release_one_waiting(engine: "Engine", organization: str, actor: str) -> dict | None:
	"""After a job of a limited organization ended: queue its oldest job waiting for room."""
	waiting = engine.store.get_all(
		JOB,
		[("organization", "=", organization), ("status", "=", states.PENDING), ("depends_on", "=", None)],
		order_by="creation asc",
		limit=1,
	)
	return settle_pending(engine, waiting[0], actor=actor) if waiting else None
