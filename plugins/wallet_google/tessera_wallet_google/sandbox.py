"""A local fake of Google's side of Google Wallet: the REST API, OAuth, the save page and callbacks.

What it fakes, with the real URL layout (the core mounts it at ``/sandbox/{tenant}/wallet_google``):

- ``POST /token``: Google's OAuth token endpoint, JWT bearer grant of a service account.
- ``/walletobjects/v1/{collection}`` for loyalty, offer, generic and gift card classes and objects:
  insert, get, update, patch, addMessage and list, bodies checked against the discovery schemas,
  errors in Google's ``google.rpc.Status`` envelope.
- ``GET /gp/v/save/{jwt}``: a user tapping "Save to Google Wallet" on the link (checks the JWT,
  stores its classes and objects, sends the save callbacks).
- ``GET /gp/m/issuer/keys``: Google's root signing keys for callbacks (the test keys).

Under ``/_sandbox/`` (a path Google never uses) tests script failures and latency, send delete
callbacks, read and reset the state. All state is kept in memory, per app instance.
"""

from __future__ import annotations

import asyncio
import copy
import html
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import jwt
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from tessera_google_auth.fake import (
    CLOCK_SKEW,
    INVALID_CREDENTIAL,
    MISSING_CREDENTIAL,
    TOKEN_LIFETIME,
    TOKEN_PATH,
    accounts_router,
    bearer,
    token_response,
)

from core.plugin_api import NO_TELEMETRY
from tessera_wallet_google import testkeys
from tessera_wallet_google.callbacks import KEYS_PATH
from tessera_wallet_google.objects import COLLECTIONS, PAYLOAD_KEYS, SCHEMAS, Kind
from tessera_wallet_google.schema import schema_problems

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
API_PREFIX = "/walletobjects/v1/"
NOT_FAKED = "The Tessera sandbox for Google Wallet does not fake {call}."

WALLET_SCOPE = "https://www.googleapis.com/auth/wallet_object.issuer"

RESOURCE_ID = re.compile(r"^\d+\.[A-Za-z0-9._-]+$")
NOTIFY_LIMIT = 3  # TEXT_AND_NOTIFY messages per pass...
NOTIFY_WINDOW = 24 * 3600  # ...per 24 hours (Google's "Trigger push notifications" guide)
MAX_MESSAGES = 10  # messages kept on a resource; the oldest are dropped
CALLBACK_TIMEOUT = 10.0
KEPT_CALLBACKS = 10_000  # bounded so a long demo does not grow without end
SAVE_AUDIENCE = "google"
SAVE_TYP = "savetowallet"

STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ABORTED", 412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
    500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}  # fmt: skip

# collection name -> (kind, 0 for a class / 1 for an object), e.g. "loyaltyObject" -> ("loyalty", 1)
COLLECTION_KINDS: dict[str, tuple[Kind, int]] = {
    name: (kind, index) for kind, names in COLLECTIONS.items() for index, name in enumerate(names)
}
# GenericClass and GenericObject have no ``kind`` property in the discovery document
NO_KIND_FIELD: set[Kind] = {"generic"}


def google_error(code: int, status: str, message: str) -> JSONResponse:
    """A response in Google's ``google.rpc.Status`` JSON envelope."""
    headers = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'} if code == 401 else None
    body = {"error": {"code": code, "message": message, "status": status}}
    return JSONResponse(body, status_code=code, headers=headers)


class ApiError(Exception):
    """A refusal of the Wallet API, answered in Google's envelope."""

    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message

    def response(self) -> JSONResponse:
        """This refusal as Google sends it."""
        return google_error(self.code, self.status, self.message)


def invalid(message: str) -> ApiError:
    """A 400 INVALID_ARGUMENT refusal."""
    return ApiError(400, "INVALID_ARGUMENT", message)


def not_found(message: str) -> ApiError:
    """A 404 NOT_FOUND refusal."""
    return ApiError(404, "NOT_FOUND", message)


@dataclass
class Failure:
    """An answer the fake gives instead of the real one, ``times`` times, to matching API calls."""

    status: int
    times: int = 1
    path_contains: str | None = None
    message: str | None = None
    retry_after: int | None = None

    def matches(self, path: str, is_token_call: bool) -> bool:
        """Whether this failure applies to a call on ``path``."""
        if is_token_call and not self.path_contains:
            return False  # a bare failure aims at the Wallet API, not at getting a token
        return self.path_contains is None or self.path_contains in path


@dataclass
class Stored:
    """A class or object kept by the fake, with its kind (``loyalty``, ``offer``...)."""

    kind: Kind
    resource: dict[str, Any]


@dataclass
class CallbackTarget:
    """A save/delete callback to send: where, and about which object."""

    url: str
    issuer_id: str
    class_id: str
    object_id: str
    event_type: str


@dataclass
class FakeGoogle:
    """Everything the fake knows; every method takes the lock (requests may run concurrently)."""

    clock: Callable[[], float] = time.time  # replaceable by tests to move through time
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (account, expires at)
    tokens_issued: int = 0
    classes: dict[str, Stored] = field(default_factory=dict)
    objects: dict[str, Stored] = field(default_factory=dict)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notified: dict[str, list[float]] = field(default_factory=dict)  # resource id -> notify times
    failures: list[Failure] = field(default_factory=list)
    delay: float = 0.0
    callbacks: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=KEPT_CALLBACKS))
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- tokens ---------------------------------------------------------------------------------

    def issue_token(self, account: str) -> str:
        """A new access token for ``account``, valid for ``TOKEN_LIFETIME`` seconds."""
        token = "ya29." + secrets.token_urlsafe(48)
        with self.lock:
            self.tokens[token] = (account, self.clock() + TOKEN_LIFETIME)
            self.tokens_issued += 1
        return token

    def token_valid(self, token: str) -> bool:
        """Whether ``token`` was issued here and has not expired."""
        with self.lock:
            issued = self.tokens.get(token)
            return issued is not None and issued[1] > self.clock()

    def expire_tokens(self) -> int:
        """Make every issued token expired, as an hour passing would; how many there were."""
        with self.lock:
            now = self.clock()
            self.tokens = {token: (account, now) for token, (account, _) in self.tokens.items()}
            return len(self.tokens)

    # --- scripted behaviour ---------------------------------------------------------------------

    def take_failure(self, path: str, is_token_call: bool) -> Failure | None:
        """Consume the first scripted failure that applies to a call on ``path``, if any."""
        with self.lock:
            for failure in self.failures:
                if failure.matches(path, is_token_call):
                    failure.times -= 1
                    if failure.times <= 0:
                        self.failures.remove(failure)
                    return Failure(failure.status, 1, failure.path_contains, failure.message,
                                   failure.retry_after)  # fmt: skip
        return None

    def add_failure(self, failure: Failure) -> None:
        """Answer the next matching API calls with this failure."""
        with self.lock:
            self.failures.append(failure)

    def reset(self) -> None:
        """Forget resources, messages, callbacks, failures and delay.

        Issued tokens stay valid: a channel holding one should not see 401s because a test reset.
        """
        with self.lock:
            self.tokens_issued = 0
            self.classes.clear()
            self.objects.clear()
            self.messages.clear()
            self.notified.clear()
            self.failures.clear()
            self.delay = 0.0
            self.callbacks.clear()

    def snapshot(self) -> dict[str, Any]:
        """A copy of the state, for tests."""
        with self.lock:
            return copy.deepcopy({
                "classes": {key: stored.resource for key, stored in self.classes.items()},
                "objects": {key: stored.resource for key, stored in self.objects.items()},
                "tokens_issued": self.tokens_issued,
                "messages": self.messages,
                "callbacks": list(self.callbacks),
                "failures": [vars(failure) for failure in self.failures],
                "delay": self.delay,
            })  # fmt: skip

    # --- the Wallet API -------------------------------------------------------------------------

    def insert(self, collection: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store a new class or object; 409 when its id is taken."""
        kind, index = COLLECTION_KINDS[collection]
        with self.lock:
            resource = self._checked(kind, index, body, previous=None)
            table = self._table(index)
            if resource["id"] in table:
                raise ApiError(409, "ALREADY_EXISTS", f"Resource already exists: {resource['id']}")
            table[resource["id"]] = Stored(kind, resource)
            return copy.deepcopy(resource)

    def get(self, collection: str, resource_id: str) -> dict[str, Any]:
        """A stored class or object of this collection; 404 otherwise."""
        with self.lock:
            return copy.deepcopy(self._find(collection, resource_id).resource)

    def update(self, collection: str, resource_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace a stored resource with ``body`` (a full resource)."""
        kind, index = COLLECTION_KINDS[collection]
        with self.lock:
            stored = self._find(collection, resource_id)
            resource = self._checked(kind, index, {"id": resource_id, **body}, previous=stored.resource)
            stored.resource = resource
            return copy.deepcopy(resource)

    def patch(self, collection: str, resource_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Merge ``body``'s top-level keys into a stored resource; the result must be valid."""
        kind, index = COLLECTION_KINDS[collection]
        with self.lock:
            stored = self._find(collection, resource_id)
            merged = {**copy.deepcopy(stored.resource), **body}
            stored.resource = self._checked(
                kind, index, merged, previous=stored.resource, path_id=resource_id
            )
            return copy.deepcopy(stored.resource)

    def add_message(self, collection: str, resource_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Add a message to a resource; ``{"resource": <updated resource>}``.

        Notifying messages are limited per resource and day; the oldest messages drop past the cap.
        """
        check_schema("AddMessageRequest", body)
        message = body.get("message")
        if not isinstance(message, dict):
            raise invalid("message: a message is required")
        message = {"messageType": "TEXT", **message}
        with self.lock:
            stored = self._find(collection, resource_id)
            now = self.clock()
            if message["messageType"] == "TEXT_AND_NOTIFY":
                recent = [at for at in self.notified.get(resource_id, []) if at > now - NOTIFY_WINDOW]
                if len(recent) >= NOTIFY_LIMIT:
                    raise ApiError(
                        429, "RESOURCE_EXHAUSTED",
                        f"Quota exceeded: notification quota of {NOTIFY_LIMIT} TEXT_AND_NOTIFY messages per "
                        f"pass in 24 hours is exceeded for {resource_id}. Send the message as TEXT instead.",
                    )  # fmt: skip
                self.notified[resource_id] = [*recent, now]
            kept = [*stored.resource.get("messages", []), message]
            stored.resource["messages"] = kept[-MAX_MESSAGES:]
            added_at = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
            self.messages.setdefault(resource_id, []).append({**message, "addedAt": added_at})
            return {"resource": copy.deepcopy(stored.resource)}

    def list_resources(self, collection: str, query: Mapping[str, str]) -> dict[str, Any]:
        """The objects of a class (``classId``) or the classes of an issuer (``issuerId``), paged."""
        kind, index = COLLECTION_KINDS[collection]
        with self.lock:
            if index == 1:
                class_id = query.get("classId")
                if not class_id:
                    raise invalid("classId: the class whose objects to list is required")
                self._class_of(kind, class_id)
                found = [s.resource for s in self.objects.values() if s.resource.get("classId") == class_id]
            else:
                issuer_id = query.get("issuerId")
                if not issuer_id or not issuer_id.isdigit():
                    raise invalid("issuerId: the issuer whose classes to list is required (digits)")
                found = [s.resource for key, s in self.classes.items()
                         if s.kind == kind and key.startswith(issuer_id + ".")]  # fmt: skip
            start, size = page_window(query, len(found))
            page = copy.deepcopy(found[start : start + size])
        pagination: dict[str, Any] = {"kind": "walletobjects#pagination", "resultsPerPage": len(page)}
        if start + size < len(found):
            pagination["nextPageToken"] = str(start + size)
        return {"resources": page, "pagination": pagination}

    # --- the save link --------------------------------------------------------------------------

    def save(self, payload: Any) -> list[CallbackTarget]:
        """Store a save JWT's classes and new objects, mark its objects saved; the callbacks to send.

        Objects that exist stay as they are (only their id is needed: a "skinny" JWT).
        """
        if not isinstance(payload, dict):
            raise invalid("payload: the JWT's payload must be an object of classes and objects")
        known = {key for keys in PAYLOAD_KEYS.values() for key in keys}
        other = sorted(key for key, value in payload.items() if key not in known and value)
        if other:
            raise ApiError(501, "UNIMPLEMENTED", NOT_FAKED.format(call=f"saving {', '.join(other)}"))
        with self.lock:
            self._check_save_payload(payload)
            for kind, (classes_key, objects_key) in PAYLOAD_KEYS.items():
                for item in payload.get(classes_key) or []:
                    if item["id"] not in self.classes:
                        self.classes[item["id"]] = Stored(kind, self._output_fields(kind, 0, item, None))
                for item in payload.get(objects_key) or []:
                    if item["id"] not in self.objects:
                        self.objects[item["id"]] = Stored(kind, self._output_fields(kind, 1, item, None))
            targets = []
            for _, objects_key in PAYLOAD_KEYS.values():
                for item in payload.get(objects_key) or []:
                    stored = self.objects[item["id"]].resource
                    stored["hasUsers"] = True  # a user holds it now
                    target = self._callback_target(stored, "save")
                    if target is not None:
                        targets.append(target)
            return targets

    def callback_for(self, object_id: str, event_type: str) -> CallbackTarget | None:
        """The callback Google would send for an event on a stored object (None: no callback URL)."""
        with self.lock:
            stored = self.objects.get(object_id)
            if stored is None:
                raise not_found(f"Resource not found: {object_id}")
            return self._callback_target(stored.resource, event_type)

    def record_callback(self, record: dict[str, Any]) -> None:
        """Keep a callback sent and the status it got."""
        with self.lock:
            self.callbacks.append(record)

    # --- helpers, called with the lock held ----------------------------------------------------

    def _table(self, index: int) -> dict[str, Stored]:
        return self.objects if index == 1 else self.classes

    def _find(self, collection: str, resource_id: str) -> Stored:
        """The stored resource with this id in this collection, or 404."""
        kind, index = COLLECTION_KINDS[collection]
        stored = self._table(index).get(resource_id)
        if stored is None or stored.kind != kind:
            raise not_found(f"Resource not found: {collection} {resource_id}")
        return stored

    def _class_of(self, kind: Kind, class_id: str) -> Stored:
        """The class an object points to; 404 when there is none of that kind (as Google looks it up)."""
        stored = self.classes.get(class_id)
        if stored is None or stored.kind != kind:
            collection = COLLECTIONS[kind][0]
            raise not_found(f"Class not found: no {collection} with id {class_id}")
        return stored

    def _checked(
        self,
        kind: Kind,
        index: int,
        body: dict[str, Any],
        previous: dict[str, Any] | None,
        path_id: str | None = None,
    ) -> dict[str, Any]:
        """``body`` as it would be stored: schema-valid, well-formed id, existing class for an object."""
        check_schema(SCHEMAS[kind][index], body)
        resource_id = body["id"]
        if not isinstance(resource_id, str) or not RESOURCE_ID.match(resource_id):
            raise invalid(
                f"id: '{resource_id}' is not '<issuerId>.<identifier>' (digits, then [A-Za-z0-9._-])"
            )
        if path_id is not None and resource_id != path_id:
            raise invalid(f"id: the body's id {resource_id} differs from the id in the URL {path_id}")
        if index == 1:
            class_id = body["classId"]
            if not isinstance(class_id, str) or not RESOURCE_ID.match(class_id):
                raise invalid(f"classId: '{class_id}' is not '<issuerId>.<identifier>'")
            self._class_of(kind, class_id)
        return self._output_fields(kind, index, body, previous)

    @staticmethod
    def _output_fields(
        kind: Kind, index: int, body: dict[str, Any], previous: dict[str, Any] | None
    ) -> dict[str, Any]:
        """``body`` with the fields Google sets itself (``kind``, ``hasUsers``)."""
        resource = copy.deepcopy(body)
        if kind not in NO_KIND_FIELD:
            resource["kind"] = f"walletobjects#{COLLECTIONS[kind][index]}"
        if index == 1:
            resource["hasUsers"] = bool(
                previous and previous.get("hasUsers")
            )  # set by Google, not the caller
        return resource

    def _check_save_payload(self, payload: dict[str, Any]) -> None:
        """Refuse a save payload that is invalid or cannot be stored, before anything is stored."""
        check_schema("Resources", payload)  # shapes and unknown keys; "Required." is checked per new item
        new_classes: dict[str, str] = {}
        for kind, (classes_key, _) in PAYLOAD_KEYS.items():
            for position, item in enumerate(payload.get(classes_key) or []):
                if not self._check_save_item(kind, 0, item, f"{classes_key}[{position}]"):
                    new_classes.setdefault(item["id"], kind)
        for kind, (_, objects_key) in PAYLOAD_KEYS.items():
            for position, item in enumerate(payload.get(objects_key) or []):
                where = f"{objects_key}[{position}]"
                if self._check_save_item(kind, 1, item, where):
                    continue
                class_id = item["classId"]
                stored = self.classes.get(class_id)
                if new_classes.get(class_id) != kind and (stored is None or stored.kind != kind):
                    collection = COLLECTIONS[kind][0]
                    raise not_found(f"{where}.classId: class not found: no {collection} with id {class_id}")

    def _check_save_item(self, kind: Kind, index: int, item: dict[str, Any], where: str) -> bool:
        """Check one class or object of a save payload; whether it already exists (and is kept)."""
        if not isinstance(item.get("id"), str):
            raise invalid(f"{where}.id: required property is missing")
        stored = self._table(index).get(item["id"])
        if stored is not None:
            if stored.kind != kind:
                raise ApiError(409, "ALREADY_EXISTS", f"{where}.id: {item['id']} exists with another kind")
            return True  # kept as it is, like Google; a skinny JWT gives only the id
        problems = schema_problems(SCHEMAS[kind][index], item)
        if problems:
            raise invalid("; ".join(f"{where}.{problem}" for problem in problems))
        if not RESOURCE_ID.match(item["id"]):
            raise invalid(f"{where}.id: '{item['id']}' is not '<issuerId>.<identifier>'")
        return False

    def _callback_target(self, resource: dict[str, Any], event_type: str) -> CallbackTarget | None:
        """Where the object's class wants its callbacks, if anywhere."""
        stored_class = self.classes.get(str(resource.get("classId")))
        options = stored_class.resource.get("callbackOptions") if stored_class else None
        url = options.get("url") if isinstance(options, dict) else None
        if not url:
            return None
        object_id = resource["id"]
        return CallbackTarget(url, object_id.split(".", 1)[0], resource["classId"], object_id, event_type)


def check_schema(name: str, body: Mapping[str, Any]) -> None:
    """Refuse ``body`` with 400 INVALID_ARGUMENT naming each problem, unless it fits schema ``name``."""
    problems = schema_problems(name, body)
    if problems:
        raise invalid(f"Invalid {name}: " + "; ".join(problems))


def page_window(query: Mapping[str, str], total: int) -> tuple[int, int]:
    """Start and size of the page asked by ``token`` and ``maxResults``."""
    try:
        start = int(query.get("token") or 0)
        size = int(query.get("maxResults") or total or 1)
    except ValueError:
        raise invalid("token/maxResults: not a number") from None
    if start < 0 or size < 1:
        raise invalid("token/maxResults: out of range")
    return start, size


def json_body(raw: bytes) -> dict[str, Any]:
    """The request's JSON object, or 400 as Google answers an unparsable payload."""
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        raise invalid("Invalid JSON payload received. The body is not JSON.") from None
    if not isinstance(body, dict):
        raise invalid("Invalid JSON payload received. Expected an object.")
    return body


# --- the save link's JWT ---------------------------------------------------------------------------


def verify_save_jwt(token: str, trusted_keys: Mapping[str, str]) -> dict[str, Any]:
    """The claims of a "Save to Google Wallet" JWT, or ``ValueError`` saying why it is refused."""
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise ValueError("The link does not carry a valid JWT.") from None
    issuer = unverified.get("iss")
    key = trusted_keys.get(issuer) if isinstance(issuer, str) else None
    if key is None:
        raise ValueError(f"The issuer {issuer!r} is not an authorized service account of an issuer account.")
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=["RS256"], audience=SAVE_AUDIENCE, leeway=CLOCK_SKEW,
            options={"require": ["iss", "aud", "typ", "payload"]},
        )  # fmt: skip
    except jwt.InvalidSignatureError:
        raise ValueError("The JWT's signature does not match the issuer's service account key.") from None
    except jwt.InvalidAudienceError:
        raise ValueError(f"aud: expected '{SAVE_AUDIENCE}', got {unverified.get('aud')!r}") from None
    except jwt.PyJWTError as exc:
        raise ValueError(f"The JWT is not valid: {exc}") from None
    if claims["typ"] != SAVE_TYP:
        raise ValueError(f"typ: expected '{SAVE_TYP}', got {claims['typ']!r}")
    origins = claims.get("origins", [])
    if not isinstance(origins, list) or not all(isinstance(origin, str) for origin in origins):
        raise ValueError("origins: expected a list of web origins")
    return claims


# --- callbacks -------------------------------------------------------------------------------------


async def send_callbacks(state: FakeGoogle, targets: list[CallbackTarget]) -> list[dict[str, Any]]:
    """Post each callback as Google does (signed body, JSON); the records kept, with their statuses."""
    if not targets:
        return []
    signer = testkeys.test_signer()

    async def send(client: httpx.AsyncClient, target: CallbackTarget) -> dict[str, Any]:
        body = signer.sign(target.issuer_id, target.class_id, target.object_id, target.event_type)
        record: dict[str, Any] = {
            "url": target.url, "class_id": target.class_id, "object_id": target.object_id,
            "event_type": target.event_type, "status": None, "error": None,
            "sent_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }  # fmt: skip
        try:
            answer = await client.post(target.url, content=body, headers={"Content-Type": "application/json"})
            record["status"] = answer.status_code
        except httpx.HTTPError as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"  # Google retries; the fake only records
        state.record_callback(record)
        return record

    async with httpx.AsyncClient(timeout=CALLBACK_TIMEOUT) as client:
        return list(await asyncio.gather(*(send(client, target) for target in targets)))


def callback_line(record: Mapping[str, Any]) -> str:
    """One callback sent, as a line of text: event, object, URL and the status (or error) it got."""
    outcome = record["status"] if record["status"] is not None else record["error"]
    return f"{record['event_type']} {record['object_id']} -> {record['url']}: {outcome}"


def save_page(object_ids: list[str], callbacks: list[dict[str, Any]]) -> HTMLResponse:
    """The small page a user sees after saving, listing the passes and callbacks (for humans and tests)."""
    items = "".join(f"<li class='saved'>{html.escape(object_id)}</li>" for object_id in object_ids)
    sent = "".join(f"<li class='callback'>{html.escape(callback_line(record))}</li>" for record in callbacks)
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Saved to Google Wallet</title></head>"
        f"<body><h1>Saved to Google Wallet</h1><ul>{items}</ul>"
        f"<h2>Callbacks</h2><ul>{sent or '<li>none</li>'}</ul></body></html>"
    )
    return HTMLResponse(body)


def refusal_page(reason: str, status_code: int = 400) -> HTMLResponse:
    """The page a user sees when the save link is refused, with the reason."""
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Unable to save</title></head>"
        f"<body><h1>Something went wrong. Unable to save to Google Wallet.</h1>"
        f"<p class='reason'>{html.escape(reason)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=status_code)


# --- control endpoints' bodies ---------------------------------------------------------------------


class FailureIn(BaseModel):
    """The body of ``POST /_sandbox/fail``."""

    model_config = ConfigDict(extra="forbid")

    status: int = Field(ge=400, le=599, description="e.g. 503, 429, 500, 403")
    times: int = Field(default=1, ge=1)
    path_contains: str | None = Field(default=None, description="Only calls whose path contains this.")
    message: str | None = Field(default=None, description="The envelope's message; a default otherwise.")
    retry_after: int | None = Field(default=None, ge=0, description="Sent as a Retry-After header.")


class DelayIn(BaseModel):
    """The body of ``POST /_sandbox/delay``."""

    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(ge=0, le=60)


class CallbackIn(BaseModel):
    """The body of ``POST /_sandbox/callback``."""

    model_config = ConfigDict(extra="forbid")

    object_id: str
    event_type: Literal["save", "del"]


def failure_response(failure: Failure) -> JSONResponse:
    """A scripted failure in Google's envelope."""
    status = STATUS_NAMES.get(failure.status, "UNKNOWN")
    message = failure.message or f"Sandbox: scripted failure {failure.status} {status}."
    response = google_error(failure.status, status, message)
    if failure.retry_after is not None:
        response.headers["Retry-After"] = str(failure.retry_after)
    return response


# --- the app -------------------------------------------------------------------------------------


def create_sandbox_app(*, trusted_keys: dict[str, str] | None = None) -> FastAPI:
    """Build the fake Google app the core mounts at ``/sandbox/{tenant}/wallet_google``.

    ``trusted_keys`` maps the service accounts allowed to get tokens and sign save links (their
    ``client_email``) to their public key (PEM); by default the test service account of
    :mod:`tessera_wallet_google.testkeys`. The state is at ``app.state.google``.
    """
    if trusted_keys is None:
        account = testkeys.test_service_account()
        trusted_keys = {account["client_email"]: testkeys.service_account_public_key_pem()}
    keys = dict(trusted_keys)
    app = FastAPI(title="Tessera sandbox: Google Wallet", docs_url=None, redoc_url=None, openapi_url=None,
                  telemetry=NO_TELEMETRY)  # fmt: skip
    state = app.state.google = FakeGoogle()

    async def scripted(path: str, is_token_call: bool) -> Response | None:
        """Apply the scripted latency, then a scripted failure if one matches."""
        if state.delay:
            await asyncio.sleep(state.delay)
        failure = state.take_failure(path, is_token_call)
        return None if failure is None else failure_response(failure)

    @app.post("/" + TOKEN_PATH)
    async def token(request: Request) -> Response:
        """Google's OAuth token endpoint: an access token for a service account's signed assertion."""
        early = await scripted("/" + TOKEN_PATH, is_token_call=True)
        if early is not None:
            return early
        return await token_response(
            request, keys, scopes={WALLET_SCOPE}, plugin_key="wallet_google", issue=state.issue_token
        )

    @app.api_route(API_PREFIX + "{path:path}", methods=METHODS)
    async def wallet_api(request: Request, path: str) -> Response:
        """The Wallet REST API for the faked collections."""
        early = await scripted(API_PREFIX + path, is_token_call=False)
        if early is not None:
            return early
        credential = bearer(request)
        if credential is None:
            return google_error(401, "UNAUTHENTICATED", MISSING_CREDENTIAL)
        if not state.token_valid(credential):
            return google_error(401, "UNAUTHENTICATED", INVALID_CREDENTIAL)
        parts, method = path.split("/"), request.method
        call = f"{method} {API_PREFIX}{path}"
        try:
            if parts[0] not in COLLECTION_KINDS or len(parts) > 3:
                raise ApiError(501, "UNIMPLEMENTED", NOT_FAKED.format(call=call))
            collection = parts[0]
            if len(parts) == 1 and method == "POST":
                return JSONResponse(state.insert(collection, json_body(await request.body())))
            if len(parts) == 1 and method == "GET":
                return JSONResponse(state.list_resources(collection, request.query_params))
            if len(parts) == 2 and method == "GET":
                return JSONResponse(state.get(collection, parts[1]))
            if len(parts) == 2 and method == "PUT":
                return JSONResponse(state.update(collection, parts[1], json_body(await request.body())))
            if len(parts) == 2 and method == "PATCH":
                return JSONResponse(state.patch(collection, parts[1], json_body(await request.body())))
            if len(parts) == 3 and parts[2] == "addMessage" and method == "POST":
                return JSONResponse(state.add_message(collection, parts[1], json_body(await request.body())))
            raise ApiError(501, "UNIMPLEMENTED", NOT_FAKED.format(call=call))
        except ApiError as error:
            return error.response()

    @app.get("/gp/v/save/{token}")
    async def save(token: str) -> Response:
        """A user opening a save link and tapping "Save to Google Wallet"."""
        try:
            claims = verify_save_jwt(token, keys)
        except ValueError as reason:
            return refusal_page(str(reason))
        try:
            targets = state.save(claims["payload"])
        except ApiError as error:
            return refusal_page(error.message, 400 if error.code < 500 else error.code)
        saved = [
            item["id"]
            for _, objects_key in PAYLOAD_KEYS.values()
            for item in claims["payload"].get(objects_key) or []
        ]
        return save_page(saved, await send_callbacks(state, targets))

    @app.get(KEYS_PATH)
    async def issuer_keys() -> JSONResponse:
        """Google's root keys that sign the callbacks' intermediate keys (the test keys)."""
        return JSONResponse(testkeys.test_signer().keys_document())

    # Trust one more service account (as adding it as a user of the issuer in Google's console).
    app.include_router(accounts_router(keys))

    @app.post("/_sandbox/fail", status_code=201)
    async def fail(failure: FailureIn) -> JSONResponse:
        """Answer the next ``times`` matching API calls with this status in Google's envelope."""
        state.add_failure(Failure(**failure.model_dump()))
        return JSONResponse(failure.model_dump(), status_code=201)

    @app.post("/_sandbox/delay")
    async def delay(body: DelayIn) -> JSONResponse:
        """Add this latency to every API call from now on (0 to stop)."""
        with state.lock:
            state.delay = body.seconds
        return JSONResponse({"seconds": body.seconds})

    @app.post("/_sandbox/callback")
    async def callback(body: CallbackIn) -> Response:
        """Send the callback Google would send for this event (e.g. a user removing the pass)."""
        try:
            target = state.callback_for(body.object_id, body.event_type)
        except ApiError as error:
            return error.response()
        sent = await send_callbacks(state, [] if target is None else [target])
        return JSONResponse({"callback": sent[0] if sent else None})

    @app.post("/_sandbox/expire_tokens")
    async def expire_tokens() -> JSONResponse:
        """Make every issued access token expired (as if an hour passed)."""
        return JSONResponse({"expired": state.expire_tokens()})

    @app.get("/_sandbox/state")
    async def read_state() -> JSONResponse:
        """Classes, objects, messages, callbacks and token count, for tests."""
        return JSONResponse(state.snapshot())

    @app.post("/_sandbox/reset")
    async def reset() -> Response:
        """Forget resources, messages, callbacks, failures and delay (issued tokens stay valid)."""
        state.reset()
        return Response(status_code=204)

    @app.api_route("/{path:path}", methods=METHODS)
    async def elsewhere(request: Request, path: str) -> JSONResponse:
        """Anything else: not a URL Google (or this fake) serves."""
        return google_error(404, "NOT_FOUND", NOT_FAKED.format(call=f"{request.method} /{path}"))

    return app
