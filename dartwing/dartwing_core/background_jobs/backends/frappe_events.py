"""The engine's Events over Frappe's realtime (Socket.IO through Redis): to the job's document
room, its owner and the users who may see it, never the whole site."""

import contextlib
import functools
import json
import time
from collections.abc import Sequence

import frappe
import redis
from frappe.realtime import get_doc_room, get_user_room
from frappe.utils.background_jobs import get_redis_connection_without_auth
from frappe.utils.response import json_handler

from dartwing.dartwing_core.permissions import ADMIN_ROLES

from ..transitions import JOB
from .frappe_store import in_open_transaction

EVENTS = {"job_status_changed": "dartwing_job_status", "job_progress": "dartwing_job_progress"}
ENGINE_EVENTS = {name: event for event, name in EVENTS.items()}


class FrappeEvents:
	"""Socket.IO through Frappe: to the job's document room and its owner, never the whole site."""

	def publish(self, event: str, payload: dict) -> None:
		self.publish_many([(event, payload)])

	def publish_many(self, events: Sequence[tuple[str, dict]]) -> None:
		messages = [m for event, payload in events for m in _messages(event, payload)]
		# A status change is news only once committed; progress is saved apart, so it goes now.
		after_commit = any(event != "job_progress" for event, _ in events) and in_open_transaction()
		emit(messages, after_commit)

	def subscribe(self, job_id=None, organization=None, idle: float = 0.5):
		"""One job's events, read off Frappe's realtime channel (what Socket.IO relays) for its
		document room: for engine.wait in Python code. An organization's are for the desk."""
		if not job_id:
			raise NotImplementedError("on Frappe, watch an organization's jobs in the desk (Socket.IO)")
		site, room = frappe.local.site, get_doc_room(JOB, job_id)
		pubsub = get_redis_connection_without_auth().pubsub()
		pubsub.subscribe("events")
		try:
			while True:
				message = pubsub.get_message(timeout=idle)
				if message is None or message["type"] == "subscribe":
					yield None  # subscribed (or silent): the caller reads the row
					continue
				if message["type"] != "message":
					continue
				data = json.loads(message["data"])
				event = ENGINE_EVENTS.get(data.get("event"))
				if event and data.get("namespace") == site and data.get("room") == room:
					yield {"event": event, **data["message"]}
		finally:
			pubsub.close()


def _messages(event: str, payload: dict) -> list[tuple]:
	"""(event, message, room) triples of one event: the job's room, its owner's, and for a status
	change the list update of each user who may see it."""
	name = EVENTS.get(event, f"dartwing_{event}")
	job_id = payload["job_id"]
	messages = [(name, payload, get_doc_room(JOB, job_id))]
	if payload.get("owner_user"):
		messages.append((name, payload, get_user_room(payload["owner_user"])))
	if event == "job_status_changed":
		messages += list_update_messages(JOB, job_id, payload.get("organization"))
	return messages


AUDIENCE_SECONDS = 30


def audience(organization: str) -> list[str]:
	"""Enabled users who may see `organization`'s jobs: the admins and the users its User
	Permissions name. Cached for AUDIENCE_SECONDS: a user given access sees live list updates
	at most that much later (the list itself is read with permissions at once)."""
	key = f"dartwing:audience:{organization}"
	memo = _audience_memo.get((frappe.local.site, organization))
	if memo is not None and memo[0] > time.monotonic():
		return memo[1]  # a job's two transitions, a worker's next jobs: one Redis read
	users = frappe.cache.get_value(key)
	if users is None:
		admins = frappe.get_all(
			"Has Role", filters={"role": ["in", ADMIN_ROLES], "parenttype": "User"}, pluck="parent"
		)
		members = frappe.get_all(
			"User Permission",
			filters={"allow": "Organization", "for_value": organization},
			pluck="user",
		)
		candidates = {"Administrator", *admins, *members}
		users = sorted(
			frappe.get_all("User", filters={"name": ["in", candidates], "enabled": 1}, pluck="name")
		)
		frappe.cache.set_value(key, users, expires_in_sec=AUDIENCE_SECONDS)
	_audience_memo[frappe.local.site, organization] = (time.monotonic() + AUDIENCE_MEMO_SECONDS, users)
	return users


# Per process, on top of the cache: adds at most this much to AUDIENCE_SECONDS.
AUDIENCE_MEMO_SECONDS = 5
_audience_memo: dict[tuple[str, str], tuple[float, list[str]]] = {}


def list_update_messages(doctype: str, name: str, organization: str | None) -> list[tuple]:
	"""The list view re-reads its page on `list_update`. Frappe v15 always sends that event to
	the doctype's room, which every user with the role joins, whatever their organization; here
	it goes to the user room of each user who may see the document instead."""
	message = {"doctype": doctype, "name": name}
	users = audience(organization) if organization else ["Administrator"]
	return [("list_update", message, get_user_room(user)) for user in users]


def emit(messages: list[tuple], after_commit: bool) -> None:
	"""Publish (event, message, room) triples as Frappe's emit_via_redis does, in one Redis round
	trip; after the current transaction commits when `after_commit`."""
	if after_commit:
		frappe.db.after_commit.add(functools.partial(_publish, messages, frappe.local.site))
	else:
		_publish(messages, frappe.local.site)


def _publish(messages: list[tuple], site: str) -> None:
	with contextlib.suppress(redis.exceptions.ConnectionError):
		pipe = get_redis_connection_without_auth().pipeline(transaction=False)
		for event, message, room in messages:
			payload = {"event": event, "message": message, "room": room, "namespace": site}
			# frappe.as_json without its indentation: the same JSON for socketio.js, cheaper.
			pipe.publish("events", json.dumps(payload, separators=(",", ":"), default=json_handler))
		pipe.execute()
