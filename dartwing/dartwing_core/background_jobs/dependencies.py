"""depends_on: a Pending child starts when its parent completes and is canceled, with the reason
logged, when the parent ends any other way."""

from . import states
from .transitions import JOB, transition


def settle_children(engine, parent: dict, children: list[str], actor: str = "scheduler") -> int:
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


def settle_pending(engine, job: dict, parent: dict | None = None, actor: str = "scheduler") -> dict | None:
	"""Queue a Pending job whose way is clear, cancel one whose parent failed, else leave it."""
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
	message = (
		f"Dependency {job['depends_on']} completed" if job.get("depends_on") else "Organization active again"
	)
	return engine.requeue(job, actor=actor, message=message)
