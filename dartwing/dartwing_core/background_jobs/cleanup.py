"""Retention: terminal jobs and their logs older than the retention period go, in batches."""

import logging
from datetime import timedelta

from . import states
from .locks import distributed_lock
from .transitions import JOB, LOG

logger = logging.getLogger("dartwing.jobs")


def purge(engine, older_than_days: float | None = None, batch_size: int | None = None) -> int:
	"""Delete Completed, Canceled and Dead Letter jobs last changed before the cutoff, with their
	log rows, one batch per transaction so a large purge never holds long locks. Returns jobs deleted."""
	days = engine.settings.purge_after_days if older_than_days is None else older_than_days
	if days < 0:
		from .errors import ValidationError

		raise ValidationError("older_than", "must be zero or more days")
	batch_size = batch_size or engine.settings.batch_size
	cutoff = engine.now() - timedelta(days=days)
	deleted = 0
	while True:
		names = [
			row["name"]
			for row in engine.store.get_all(
				JOB,
				[("status", "in", tuple(states.TERMINAL)), ("modified", "<", cutoff)],
				["name"],
				limit=batch_size,
			)
		]
		if not names:
			break
		with engine.store.transaction():
			# Re-read inside the transaction: an admin may have retried one of them meanwhile.
			still = [("name", "in", names), ("status", "in", tuple(states.TERMINAL))]
			names = [row["name"] for row in engine.store.get_all(JOB, still, ["name"])]
			engine.store.delete(LOG, [("background_job", "in", names)])
			deleted += engine.store.delete(JOB, [("name", "in", names)])
	if deleted:
		logger.info("Purged %d jobs older than %s days", deleted, days)
	return deleted


@distributed_lock("purge_daily", ttl=24 * 3600, release=False)
def purge_daily(engine) -> int:
	"""Runs at most once a day across all schedulers: the lock outlives the run on purpose."""
	return purge(engine)
