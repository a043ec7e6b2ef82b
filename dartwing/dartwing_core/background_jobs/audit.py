"""Hash-chained execution log: each row stores the hash of the one before it, so editing or
deleting history is detectable with `verify_chain`."""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

GENESIS = "0" * 64
_CHAINED_FIELDS = (
	"background_job",
	"sequence",
	"from_status",
	"to_status",
	"timestamp",
	"actor",
	"message",
	"retry_attempt",
)


def _canonical(value):
	if isinstance(value, datetime):
		return value.isoformat(timespec="microseconds")
	return value


def entry_hash(previous_hash: str, log: dict) -> str:
	payload = [previous_hash] + [_canonical(log.get(f)) for f in _CHAINED_FIELDS]
	return hashlib.sha256(json.dumps(payload, separators=(",", ":"), default=str).encode()).hexdigest()


@dataclass(frozen=True)
class ChainReport:
	ok: bool
	entries: int
	broken_at: int | None = None  # sequence of the first row that does not match
	problem: str = ""


def verify_chain(chain_head: str | None, logs: list[dict]) -> ChainReport:
	"""Check `logs` (one job's rows, in sequence order) link up and end at the job's chain_head."""
	previous = GENESIS
	for expected_sequence, log in enumerate(logs, 1):
		if log["sequence"] != expected_sequence:
			return ChainReport(False, len(logs), log["sequence"], f"row {expected_sequence} is missing")
		if log["previous_hash"] != previous:
			return ChainReport(False, len(logs), log["sequence"], "previous_hash does not match")
		if entry_hash(previous, log) != log["entry_hash"]:
			return ChainReport(False, len(logs), log["sequence"], "row content was changed")
		previous = log["entry_hash"]
	if (chain_head or GENESIS) != previous:
		linked = [GENESIS] + [log["entry_hash"] for log in logs]
		if (chain_head or GENESIS) in linked:
			added = linked.index(chain_head or GENESIS) + 1
			return ChainReport(
				False, len(logs), added, f"row {added} was added after the job's last transition"
			)
		return ChainReport(False, len(logs), len(logs) + 1, "rows after the last one were removed")
	return ChainReport(True, len(logs))
