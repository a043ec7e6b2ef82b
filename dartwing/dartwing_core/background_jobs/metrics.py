"""Queue health for admins: counts, depth, processing time and failure rate, also as Prometheus text."""

from datetime import timedelta

from . import states
from .ports import organization_scope
from .transitions import JOB

_DURATION = ("started_at", "completed_at")
_TIMING = {"count": ("count", _DURATION), "average": ("avg", _DURATION), "p95": ("p95", _DURATION)}


def _timing(row: dict | None) -> dict:
	"""p95 is nearest-rank: the smallest duration with at least 95% of them at or below it."""
	if not row or not row["count"]:
		return {"count": 0, "average_seconds": None, "p95_seconds": None}
	return {
		"count": row["count"],
		"average_seconds": round(row["average"], 4),
		"p95_seconds": round(row["p95"], 4),
	}


def collect(
	engine, organization: str | None = None, organizations: list[str] | None = None, window_hours: float = 24
) -> dict:
	"""Metrics of one organization, of a set of them (what a user may see), or of all (None).

	Counts by status are of every unfinished job and of the jobs that ended in the window
	(completed_at, set by every terminal status, since its start). Processing time covers jobs
	completed in the window (started_at to completed_at of the last attempt). Failure rate per
	type is Dead Letter / (Completed + Dead Letter) over jobs that ended in the window; canceled
	jobs do not count either way. The database computes every
	figure (Store.aggregate): a window can hold hundreds of thousands of jobs."""
	scope = organization_scope(organization, organizations)
	since = engine.now() - timedelta(hours=window_hours)
	store = engine.store
	# Every unfinished job and those that ended in the window, counted by status with their items
	# (ctx.each) in one read each of the covering indexes: counting every job ever kept would read
	# a million index entries on a large site, for a figure that only says how long purge waits.
	by_status = {s: 0 for s in states.STATUSES}
	outcomes: dict[str, list[int]] = {}  # job type: [completed, dead-lettered] in the window
	items: dict[str, dict[str, int]] = {}
	for part in (
		[*scope, ("status", "in", states.UNFINISHED)],
		[*scope, ("status", "in", tuple(states.TERMINAL)), ("completed_at", ">=", since)],
	):
		for row in store.aggregate(JOB, _COUNT_AND_ITEMS, part, group_by=("job_type", "status")):
			by_status[row["status"]] += row["n"]
			sums = items.setdefault(row["job_type"], dict.fromkeys(_ITEMS, 0))
			for key in _ITEMS:
				sums[key] += int(row[key] or 0)
			if row["status"] in (states.COMPLETED, states.DEAD_LETTER):
				outcomes.setdefault(row["job_type"], [0, 0])[row["status"] == states.DEAD_LETTER] += row["n"]
	depth = {p: 0 for p in states.PRIORITIES} | store.count_by(
		JOB, "priority", [*scope, ("status", "=", states.QUEUED)]
	)
	done = [*scope, ("status", "=", states.COMPLETED), ("completed_at", ">=", since)]
	overall = store.aggregate(JOB, _TIMING, done)
	by_type = store.aggregate(JOB, _TIMING, done, group_by=("job_type",))
	return {
		"organization": organization,
		"window_hours": window_hours,
		"job_count_by_status": by_status,
		"queue_depth_by_priority": depth,
		"processing_time": {
			**_timing(overall[0] if overall else None),
			"by_job_type": {
				row["job_type"]: _timing(row)
				for row in sorted(by_type, key=lambda r: r["job_type"])
				if row["count"]
			},
		},
		"failure_rate_by_type": {
			t: round(dead / (done + dead), 4) for t, (done, dead) in sorted(outcomes.items())
		},
		"items_by_type": {job_type: sums for job_type, sums in sorted(items.items()) if any(sums.values())},
	}


_ITEMS = {
	"done": ("sum", "items_done"),
	"failed": ("sum", "items_failed"),
	"skipped": ("sum", "items_skipped"),
}
_COUNT_AND_ITEMS = {"n": ("count", "*"), **_ITEMS}


def _label(value: str) -> str:
	return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def to_prometheus(metrics: dict) -> str:
	lines = []

	def family(name: str, help_text: str, samples: list[tuple[dict, float | None]]) -> None:
		lines.append(f"# HELP {name} {help_text}")
		lines.append(f"# TYPE {name} gauge")
		for labels, value in samples:
			if value is None:
				continue
			if metrics.get("organization"):
				labels = {"organization": metrics["organization"], **labels}
			text = ",".join(f'{k}="{_label(str(v))}"' for k, v in labels.items())
			lines.append(f"{name}{{{text}}} {value}" if text else f"{name} {value}")

	family(
		"dartwing_jobs",
		"Unfinished jobs by status, and jobs that ended in the window.",
		[({"status": s}, n) for s, n in metrics["job_count_by_status"].items()],
	)
	family(
		"dartwing_queue_depth",
		"Queued jobs by priority.",
		[({"priority": p}, n) for p, n in metrics["queue_depth_by_priority"].items()],
	)
	by_type = metrics["processing_time"]["by_job_type"]
	family(
		"dartwing_processing_seconds_average",
		"Average processing time of completed jobs in the window.",
		[({"job_type": t}, v["average_seconds"]) for t, v in by_type.items()],
	)
	family(
		"dartwing_processing_seconds_p95",
		"95th percentile processing time of completed jobs in the window.",
		[({"job_type": t}, v["p95_seconds"]) for t, v in by_type.items()],
	)
	family(
		"dartwing_failure_rate",
		"Dead-lettered share of jobs that ended in the window.",
		[({"job_type": t}, v) for t, v in metrics["failure_rate_by_type"].items()],
	)
	items = metrics["items_by_type"]
	family(
		"dartwing_items_processed",
		"Items (ctx.each) processed, whatever their outcome, by jobs unfinished or ended in the window.",
		[({"job_type": t}, v["done"] + v["failed"] + v["skipped"]) for t, v in items.items()],
	)
	family(
		"dartwing_items_failed",
		"Items (ctx.each) that failed, in jobs unfinished or ended in the window.",
		[({"job_type": t}, v["failed"]) for t, v in items.items()],
	)
	return "\n".join(lines) + "\n"
