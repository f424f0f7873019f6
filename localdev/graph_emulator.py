"""A local Microsoft Graph and login emulator, for local runs and end-to-end tests.

It serves, over TLS, what this service uses of the real ones:

    GET  /{tenant}/v2.0/.well-known/openid-configuration   login metadata msal reads
    POST /{tenant}/oauth2/v2.0/token                        client-credentials tokens: a client
                                                            secret, a certificate-signed assertion,
                                                            or a federated one (jwt-bearer)
    GET  /msi/token                                         the platform's managed identity endpoint
                                                            (IDENTITY_ENDPOINT / IDENTITY_HEADER)
    GET  /v1.0/users/{id or upn}
    POST /v1.0/users/{organizerId}/onlineMeetings/createOrGet
    GET | PATCH | DELETE /v1.0/users/{organizerId}/onlineMeetings/{meetingId}
    GET  /v1.0/users/{organizerId}/onlineMeetings/{meetingId}/attendanceReports
    GET  /v1.0/users/{organizerId}/onlineMeetings/{meetingId}/attendanceReports/{reportId}
                                                            ($expand=attendanceRecords)
    POST /v1.0/users/{id or upn}/sendMail

`users/{key}` may also be written `users('{key}')` (quotes inside doubled), the form Graph asks
for when a UPN starts with `$`; `users/$...` is refused with 400, as Graph refuses it.

Meetings live in memory. Every call is counted, and faults can be injected for a share of the
calls or for a named operation: an HTTP status (429 with Retry-After, 503, 403 "No application
access policy found", 404, ...), added latency, or a hang that outlasts the client's timeout.
Meetings can also be changed "by hand", as a user would in Teams, without counting as a call.
A meeting "takes place" through `attend` (someone joins and leaves, by e-mail or, for a guest,
by display name), and its attendance report appears once `publish_attendance` publishes it, as
Teams publishes one some minutes after each session; `artifacts_granted = False` answers the
report calls 403, as Graph does when the app lacks OnlineMeetingArtifact.Read.All.
Control it in-process (`GraphEmulator`) or over HTTP under `/_emulator/` (see docs/local.md).

`GraphEmulator(tls=None)` has no server: `install_responses(rsps)` answers requests made through
`requests` to a base URL with the same semantics, faked at the wire by the `responses` library.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import re
import secrets
import ssl
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from localdev.tls import LocalTls, make_local_tls

if TYPE_CHECKING:
    import requests
    import responses

OPERATIONS = (
    "discovery",
    "token",
    "identity",
    "getUser",
    "createOrGet",
    "getMeeting",
    "patchMeeting",
    "deleteMeeting",
    "listAttendanceReports",
    "getAttendanceReport",
    "sendMail",
)
POLICY_MISSING_MESSAGE = "No application access policy found for this app."
ARTIFACTS_FORBIDDEN_MESSAGE = (
    "The application does not have the permission to read online meeting artifacts."
)
_CREATE_OR_GET_FIELDS = {
    "externalId",
    "startDateTime",
    "endDateTime",
    "subject",
    "participants",
    "chatInfo",
}
_PATCH_FIELDS = {
    "startDateTime",
    "endDateTime",
    "subject",
    "participants",
    "lobbyBypassSettings",
    "allowedPresenters",
    "allowMeetingChat",
    "isEntryExitAnnounced",
    "recordAutomatically",
}
_EVOLVED_SCOPES = {"invited", "organizationExcludingGuests"}


class _HttpsServer(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a burst of clients beyond it meets
    # connection resets, which a real host (and Graph) would not give.
    request_queue_size = 128


@dataclass
class Fault:
    """Make calls to `operation` ("*" for all) fail or slow down.

    `share` is the fraction of matching calls affected, applied deterministically (0.5 hits
    every second call); `count` caps how many calls are affected (None: no cap).
    `hang_seconds` holds the call that long and then drops the connection (a timeout).
    `lost_reply`: the operation is carried out first and only its answer fails, as when
    Graph made the meeting but the response never arrived.
    """

    operation: str = "*"
    status: int | None = None
    message: str | None = None
    graph_code: str | None = None
    retry_after: str | None = None
    share: float = 1.0
    count: int | None = None
    latency_ms: int = 0
    hang_seconds: float = 0.0
    lost_reply: bool = False
    seen: int = 0
    applied: int = 0

    def take(self, operation: str) -> bool:
        if self.operation not in ("*", operation):
            return False
        if self.count is not None and self.applied >= self.count:
            return False
        before, self.seen = self.seen, self.seen + 1
        if int(self.seen * self.share) > int(before * self.share):
            self.applied += 1
            return True
        return False


@dataclass
class User:
    id: str
    user_principal_name: str
    display_name: str
    directory: str
    mail: str | None = None
    policy_granted: bool = True

    def resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "displayName": self.display_name,
            "userPrincipalName": self.user_principal_name,
            "mail": self.mail or self.user_principal_name,
        }


JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FEDERATION_AUDIENCE = "api://AzureADTokenExchange"


@dataclass
class FederatedCredential:
    """Trust in another issuer's tokens (here: the emulated managed identity's)."""

    issuer: str
    subject: str
    audience: str = FEDERATION_AUDIENCE


@dataclass
class App:
    directory: str
    client_id: str
    client_secret: str | None
    federated: list[FederatedCredential] = field(default_factory=list)
    certificates: list[Any] = field(default_factory=list)  # cryptography x509 certificates


@dataclass
class ManagedIdentity:
    client_id: str
    object_id: str
    directory: str


@dataclass
class Meeting:
    id: str
    organizer_id: str
    external_id: str | None
    subject: str | None
    start: str
    end: str
    join_url: str
    created: str
    participants: list[dict[str, Any]] = field(default_factory=list)
    lobby_scope: str = "organization"
    dial_in_bypass: bool = False
    allowed_presenters: str = "everyone"
    allow_meeting_chat: str = "enabled"
    entry_exit_announced: bool = True
    record_automatically: bool = False
    deleted: bool = False
    patches: int = 0
    # Attendance of the session under way (not yet in a report), and the published reports.
    attending: list[dict[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)

    def resource(self, evolved_enums: bool) -> dict[str, Any]:
        scope = self.lobby_scope
        if scope in _EVOLVED_SCOPES and not evolved_enums:
            scope = "unknownFutureValue"
        return {
            "id": self.id,
            "externalId": self.external_id,
            "creationDateTime": self.created,
            "startDateTime": self.start,
            "endDateTime": self.end,
            "subject": self.subject,
            "joinWebUrl": self.join_url,
            "participants": {
                "organizer": {"identity": {"user": {"id": self.organizer_id}}, "role": "presenter"},
                "attendees": self.participants,
            },
            "lobbyBypassSettings": {"scope": scope, "isDialInBypassEnabled": self.dial_in_bypass},
            "allowedPresenters": self.allowed_presenters,
            "allowMeetingChat": self.allow_meeting_chat,
            "isEntryExitAnnounced": self.entry_exit_announced,
            "recordAutomatically": self.record_automatically,
        }


class _Reply(Exception):
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        self.status, self.body, self.headers = status, body, headers or {}

    def wire(self) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body as the server sends them."""
        payload = b"" if self.body is None else json.dumps(self.body).encode()
        headers = {"Content-Type": "application/json"} if payload else {}
        headers["request-id"] = str(uuid.uuid4())
        headers.update(self.headers)
        return self.status, headers, payload


class _Hang(ConnectionAbortedError):
    """A hang fault: the call is held `seconds` and then the connection is dropped."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"fault: hang {seconds} s")
        self.seconds = seconds


def _with_roles(data: dict[str, Any], allowed_presenters: str) -> list[dict[str, Any]]:
    """The attendees a request sent, as the meeting keeps them: a `presenter` role counts only
    where allowedPresenters is roleIsPresenter (Graph's rule); elsewhere it is an attendee."""
    attendees = list((data.get("participants") or {}).get("attendees") or [])
    if allowed_presenters == "roleIsPresenter":
        return attendees
    return [
        {**a, "role": "attendee"} if isinstance(a, dict) and a.get("role") == "presenter" else a
        for a in attendees
    ]


def _graph_error(status: int, code: str, message: str) -> _Reply:
    return _Reply(
        status,
        {
            "error": {
                "code": code,
                "message": message,
                "innerError": {"request-id": str(uuid.uuid4()), "date": _now()},
            }
        },
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise _graph_error(400, "BadRequest", f"{name} is required")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _graph_error(400, "BadRequest", f"{name} is not a valid DateTime") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _graph_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


class GraphEmulator:
    """The emulator's state and its HTTPS server.

    With `tls=None` there is no server (no socket is opened): `start()` refuses, `stop()` does
    nothing, and `install_responses()` serves the emulator to `requests` in-process.
    """

    def __init__(self, tls: LocalTls | None, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.RLock()
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.faults: list[Fault] = []
        self.users: dict[str, User] = {}
        self.apps: dict[tuple[str, str], App] = {}
        self.meetings: dict[str, Meeting] = {}
        self.mail: list[dict[str, Any]] = []
        # False: the app lacks OnlineMeetingArtifact.Read.All (attendance reports answer 403).
        self.artifacts_granted = True
        self._tokens: dict[str, tuple[str, str, float]] = {}
        self.identities: dict[str, ManagedIdentity] = {}
        # What the platform hands a function app as IDENTITY_HEADER.
        self.identity_header = secrets.token_urlsafe(16)
        self.identity_token_seconds = 3600
        self._identity_key = secrets.token_bytes(32)
        # How each token request proved the app: "secret", "certificate" or "federated".
        self.token_requests: list[dict[str, str]] = []
        self._wire_base_url: str | None = None
        self._thread: threading.Thread | None = None
        self._server: _HttpsServer | None = None
        if tls is None:
            return
        self._server = _HttpsServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)

    @property
    def base_url(self) -> str:
        """The server's https URL; without a server, the URL given to `install_responses`."""
        if self._server is not None:
            host, port = self._server.server_address[:2]
            return f"https://{host!s}:{port}"
        if self._wire_base_url is None:
            raise RuntimeError(
                "this GraphEmulator has no server (tls=None) and no URL until install_responses()"
            )
        return self._wire_base_url

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}/v1.0"

    def start(self) -> GraphEmulator:
        if self._server is None:
            raise RuntimeError(
                "this GraphEmulator has no server (tls=None): use install_responses() instead"
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the server; nothing to do without one (tls=None)."""
        if self._server is None:
            return
        if self._thread is not None:
            self._server.shutdown()
            self._thread = None
        self._server.server_close()

    def install_responses(
        self, rsps: responses.RequestsMock, base_url: str = "https://graph.test"
    ) -> None:
        """Answer every request to `base_url` made through `requests` while `rsps` is active:
        Graph at `{base_url}/v1.0/...`, the login endpoints at `{base_url}/{directory}/...` and
        the control calls at `{base_url}/_emulator/...`, with the server's semantics.

        A hang fault raises at once instead of holding the call: `ReadTimeout` when the
        client's read timeout is shorter than the hang (as it would time out), otherwise the
        `ConnectionError` of a dropped connection. Latency faults do sleep.
        """
        base = base_url.rstrip("/")
        parts = urlsplit(base)
        if parts.scheme != "https" or not parts.netloc:
            raise ValueError(f"base_url must be an https URL (msal requires it), got {base_url!r}")
        if self._server is None:
            self._wire_base_url = base
        pattern = re.compile(re.escape(base) + r"(?:[/?].*)?$", re.IGNORECASE)

        def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
            return self._answer_request(request, base)

        for method in ("GET", "POST", "PATCH", "DELETE"):
            rsps.add_callback(method, pattern, callback=callback, content_type=None)

    def _answer_request(
        self, request: requests.PreparedRequest, base: str
    ) -> tuple[int, dict[str, str], bytes]:
        import requests

        url = urlsplit(str(request.url))
        prefix = urlsplit(base).path
        path = url.path[len(prefix) :] if url.path.startswith(prefix) else url.path
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        try:
            reply = self.handle(
                str(request.method),
                path,
                parse_qs(url.query),
                request.headers,
                bytes(body),
                base_url=base,
                sleep_on_hang=False,
            )
        except _Hang as hang:
            timeout = getattr(request, "req_kwargs", {}).get("timeout")
            read_timeout = timeout[1] if isinstance(timeout, tuple) else timeout
            if read_timeout is not None and read_timeout < hang.seconds:
                raise requests.exceptions.ReadTimeout(
                    f"emulated: no answer within the read timeout ({read_timeout} s)",
                    request=request,
                ) from None
            raise requests.exceptions.ConnectionError(
                f"emulated: connection dropped after a hang of {hang.seconds} s", request=request
            ) from None
        return reply.wire()

    # -- set-up ---------------------------------------------------------------------------------

    @property
    def identity_endpoint(self) -> str:
        """What the platform hands a function app as IDENTITY_ENDPOINT."""
        return f"{self.base_url}/msi/token"

    def register_app(self, directory: str, client_id: str, client_secret: str | None) -> None:
        with self._lock:
            self.apps[(directory, client_id)] = App(directory, client_id, client_secret)

    def add_managed_identity(self, directory: str, client_id: str | None = None) -> ManagedIdentity:
        """A user-assigned identity the identity endpoint hands tokens for."""
        identity = ManagedIdentity(client_id or str(uuid.uuid4()), str(uuid.uuid4()), directory)
        with self._lock:
            self.identities[identity.client_id] = identity
        return identity

    def federate(self, directory: str, client_id: str, identity: ManagedIdentity) -> None:
        """Add `identity` to the app registration as a federated identity credential (issuer
        the identity's directory, subject its object id, audience api://AzureADTokenExchange)."""
        issuer = f"{self.base_url}/{identity.directory}/v2.0"
        with self._lock:
            self.apps[(directory, client_id)].federated.append(
                FederatedCredential(issuer, identity.object_id)
            )

    def add_certificate(self, directory: str, client_id: str, certificate_pem: bytes) -> None:
        """Upload a certificate's public part to the app registration."""
        from cryptography import x509

        with self._lock:
            self.apps[(directory, client_id)].certificates.append(
                x509.load_pem_x509_certificate(certificate_pem)
            )

    def add_user(
        self,
        directory: str,
        upn: str,
        display_name: str,
        *,
        policy_granted: bool = True,
        user_id: str | None = None,
    ) -> User:
        with self._lock:
            user = User(
                # As Entra keeps a user's object id: the same user, the same id, restart after
                # restart (so a tenant row that stored it, in local storage kept across runs,
                # still finds its organizer).
                id=user_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{directory}/{upn.lower()}")),
                user_principal_name=upn,
                display_name=display_name,
                directory=directory,
                policy_granted=policy_granted,
            )
            self.users[user.id] = user
            return user

    def add_fault(self, fault: Fault) -> Fault:
        if fault.operation != "*" and fault.operation not in OPERATIONS:
            raise ValueError(f"unknown operation {fault.operation!r}; one of {OPERATIONS}")
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def reset(self) -> None:
        """Forget meetings, mail, counters and faults (users and apps stay)."""
        with self._lock:
            self.meetings.clear()
            self.mail.clear()
            self.calls.clear()
            self.statuses.clear()
            self.faults.clear()
            self.token_requests.clear()
            self.artifacts_granted = True

    def live_meetings(self) -> list[Meeting]:
        with self._lock:
            return [m for m in self.meetings.values() if not m.deleted]

    # -- changes made in Teams, not through the API (not counted as calls) -------------------

    def delete_meeting_by_hand(self, meeting_id: str) -> Meeting:
        """Delete a meeting as its organizer would in Teams. KeyError if there is no such live
        meeting. Graph then answers 404 for it; createOrGet still returns it (as Graph does)."""
        with self._lock:
            meeting = self._live(meeting_id)
            meeting.deleted = True
            return meeting

    def edit_meeting_by_hand(
        self, meeting_id: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> Meeting:
        """Move a meeting (its start, its end or both) as its organizer would in Teams.
        KeyError if there is no such live meeting; ValueError for a time without a time zone
        or an end not after the start."""
        with self._lock:
            meeting = self._live(meeting_id)
            new_start = _parse_time(meeting.start, "start") if start is None else _aware(start)
            new_end = _parse_time(meeting.end, "end") if end is None else _aware(end)
            if new_end <= new_start:
                raise ValueError("the end must be after the start")
            meeting.start, meeting.end = _graph_time(new_start), _graph_time(new_end)
            return meeting

    def attend(
        self,
        meeting_id: str,
        who: str,
        join: datetime,
        leave: datetime,
        *,
        display_name: str | None = None,
    ) -> None:
        """Someone was in the meeting from `join` to `leave`: `who` is an e-mail address (a
        signed-in user; `display_name` as Teams shows them) or, without an `@`, the display name
        a guest typed (Teams records no address for them). Kept for the session's report,
        which appears once `publish_attendance` publishes it. KeyError for no such meeting;
        ValueError for a time without a time zone or a leave not after the join."""
        start, end = _aware(join), _aware(leave)
        if end <= start:
            raise ValueError("the leave must be after the join")
        email = who if "@" in who else None
        if email is not None:
            user = next(
                (u for u in self.users.values() if u.user_principal_name.lower() == who.lower()),
                None,
            )
            name = display_name or (user.display_name if user else who.split("@")[0])
        else:
            name = display_name or who
        interval = {
            "joinDateTime": _graph_time(start),
            "leaveDateTime": _graph_time(end),
            "durationInSeconds": int((end - start).total_seconds()),
        }
        with self._lock:
            meeting = self._live(meeting_id)
            key = (email or "").lower(), name
            for record in meeting.attending:
                if (record["emailAddress"] or "").lower() == key[0] and (
                    record["identity"]["displayName"] == key[1]
                ):
                    record["attendanceIntervals"].append(interval)
                    record["totalAttendanceInSeconds"] += interval["durationInSeconds"]
                    return
            meeting.attending.append(
                {
                    "id": str(uuid.uuid4()),
                    "emailAddress": email,
                    "totalAttendanceInSeconds": interval["durationInSeconds"],
                    "role": "Attendee",
                    "identity": {"id": str(uuid.uuid4()), "displayName": name, "tenantId": None},
                    "attendanceIntervals": [interval],
                }
            )

    def publish_attendance(self, meeting_id: str) -> str:
        """The session's attendance report appears (as Teams publishes it after the meeting);
        its id. KeyError for no such meeting; ValueError when nobody attended since the last."""
        with self._lock:
            meeting = self._live(meeting_id)
            records, meeting.attending = meeting.attending, []
            if not records:
                raise ValueError("nobody attended since the last report")
            intervals = [i for r in records for i in r["attendanceIntervals"]]
            report = {
                "id": str(uuid.uuid4()),
                "totalParticipantCount": len(records),
                "meetingStartDateTime": min(i["joinDateTime"] for i in intervals),
                "meetingEndDateTime": max(i["leaveDateTime"] for i in intervals),
                "attendanceRecords": records,
            }
            meeting.reports.append(report)
            return str(report["id"])

    def _live(self, meeting_id: str) -> Meeting:
        meeting = self.meetings.get(meeting_id)
        if meeting is None or meeting.deleted:
            raise KeyError(meeting_id)
        return meeting

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": dict(self.calls),
                "statuses": dict(self.statuses),
                "meetings": [
                    {**m.resource(True), "deleted": m.deleted, "patches": m.patches}
                    for m in self.meetings.values()
                ],
                "users": [asdict(u) for u in self.users.values()],
                "mail": list(self.mail),
                "faults": [asdict(f) for f in self.faults],
                "artifactsGranted": self.artifacts_granted,
            }

    # -- request handling -----------------------------------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: Any,
        body: bytes,
        *,
        base_url: str | None = None,
        sleep_on_hang: bool = True,
    ) -> _Reply:
        """Answer one request. `base_url` is where it was sent (the login metadata names
        endpoints under it; default `self.base_url`). A hang fault raises `_Hang` (a
        `ConnectionAbortedError`), after holding the call unless `sleep_on_hang` is False."""
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:1] == ["_emulator"]:
            return self._control(method, parts[1:], body)
        operation, route = self._route(method, parts, base_url)
        with self._lock:
            self.calls[operation] += 1
            fault = next((f for f in self.faults if f.take(operation)), None)
        if fault is not None and fault.lost_reply:
            with contextlib.suppress(_Reply):
                route(headers, body, query)
        if fault is not None:
            if fault.hang_seconds:
                if sleep_on_hang:
                    time.sleep(fault.hang_seconds)
                raise _Hang(fault.hang_seconds)
            if fault.latency_ms:
                time.sleep(fault.latency_ms / 1000)
            if fault.status is not None:
                reply = self._fault_reply(fault, operation)
                self._count_status(operation, reply.status)
                return reply
        try:
            reply = route(headers, body, query)
        except _Reply as answered:
            reply = answered
        self._count_status(operation, reply.status)
        return reply

    def _count_status(self, operation: str, status: int) -> None:
        with self._lock:
            self.statuses[f"{operation}:{status}"] += 1

    @staticmethod
    def _fault_reply(fault: Fault, operation: str) -> _Reply:
        status = fault.status or 500
        if operation == "token":
            return _Reply(
                status,
                {
                    "error": fault.graph_code or "invalid_client",
                    "error_description": fault.message or "AADSTS7000215: Invalid client secret.",
                },
            )
        defaults = {
            429: ("TooManyRequests", "Too many requests"),
            403: ("Forbidden", POLICY_MISSING_MESSAGE),
            404: ("NotFound", "The requested resource does not exist."),
            503: ("ServiceUnavailable", "The service is temporarily unavailable."),
            504: ("GatewayTimeout", "Gateway timeout."),
            401: ("InvalidAuthenticationToken", "Access token validation failure."),
        }
        code, message = defaults.get(status, ("InternalServerError", "Injected fault."))
        reply = _graph_error(status, fault.graph_code or code, fault.message or message)
        if fault.retry_after is not None:
            reply.headers["Retry-After"] = fault.retry_after
        return reply

    def _route(self, method: str, parts: list[str], base_url: str | None) -> tuple[str, Any]:
        def unknown(*_: Any) -> _Reply:
            raise _graph_error(
                400, "BadRequest", f"Unsupported request {method} /{'/'.join(parts)}"
            )

        if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            return "discovery", lambda *_: self._discovery(parts[0], base_url or self.base_url)
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"] and method == "POST":
            return "token", lambda h, b, q: self._token(parts[0], b, base_url or self.base_url)
        if parts == ["msi", "token"] and method == "GET":
            return "identity", lambda h, b, q: self._identity_token(h, q, base_url or self.base_url)
        if parts[:1] == ["v1.0"] and len(parts) >= 2 and parts[1].startswith("users("):
            # The key form `users('{id or upn}')`, which Graph asks for when a UPN starts with `$`.
            key = _odata_string(parts[1][len("users(") :].removesuffix(")"))
            if key is None or not parts[1].endswith(")"):
                return "unknown", unknown
            parts = ["v1.0", "users", key, *parts[2:]]
        elif parts[:2] == ["v1.0", "users"] and len(parts) >= 3 and parts[2].startswith("$"):
            # As Graph does: OData reserves a leading `$` for system query options.
            def dollar_key(*_: Any) -> _Reply:
                raise _graph_error(
                    400, "BadRequest", f"Write a key that starts with '$' as users('{parts[2]}')"
                )

            return "unknown", dollar_key
        if parts[:2] != ["v1.0", "users"] or len(parts) < 3:
            return "unknown", unknown
        user_ref, rest = parts[2], parts[3:]
        if not rest and method == "GET":
            return "getUser", lambda h, b, q: self._get_user(h, user_ref)
        if rest == ["sendMail"] and method == "POST":
            return "sendMail", lambda h, b, q: self._send_mail(h, user_ref, b)
        if rest == ["onlineMeetings", "createOrGet"] and method == "POST":
            return "createOrGet", lambda h, b, q: self._create_or_get(h, user_ref, b)
        if len(rest) == 2 and rest[0] == "onlineMeetings":
            meeting_id = rest[1]
            if method == "GET":
                return "getMeeting", lambda h, b, q: self._get_meeting(h, user_ref, meeting_id)
            if method == "PATCH":
                return "patchMeeting", lambda h, b, q: self._patch(h, user_ref, meeting_id, b)
            if method == "DELETE":
                return "deleteMeeting", lambda h, b, q: self._delete(h, user_ref, meeting_id)
        if len(rest) in (3, 4) and rest[0] == "onlineMeetings" and rest[2] == "attendanceReports":
            meeting_id = rest[1]
            if method == "GET" and len(rest) == 3:
                return "listAttendanceReports", lambda h, b, q: self._list_reports(
                    h, user_ref, meeting_id
                )
            if method == "GET":
                report_id = rest[3]
                return "getAttendanceReport", lambda h, b, q: self._get_report(
                    h, user_ref, meeting_id, report_id, q
                )
        return "unknown", unknown

    # login

    def _discovery(self, directory: str, base_url: str) -> _Reply:
        with self._lock:
            known = any(app.directory == directory for app in self.apps.values())
        if not known:
            return _Reply(
                400,
                {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant '{directory}' not found.",
                },
            )
        base = f"{base_url}/{directory}"
        return _Reply(
            200,
            {
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "token"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
            },
        )

    def _identity_token(self, headers: Any, query: dict[str, list[str]], base_url: str) -> _Reply:
        """App Service's managed identity protocol (api-version 2019-08-01)."""
        import jwt

        if not secrets.compare_digest(headers.get("X-IDENTITY-HEADER", ""), self.identity_header):
            return _Reply(401, {"error": "invalid_request", "error_description": "bad header"})
        args = {k: v[0] for k, v in query.items()}
        resource = args.get("resource", "")
        with self._lock:
            identity = self.identities.get(args.get("client_id", ""))
            if identity is None and "client_id" not in args and len(self.identities) == 1:
                identity = next(iter(self.identities.values()))
        if identity is None:
            return _Reply(400, {"error": "invalid_request", "error_description": "no identity"})
        if resource not in (FEDERATION_AUDIENCE, f"{FEDERATION_AUDIENCE}/.default"):
            return _Reply(400, {"error": "invalid_resource", "error_description": resource})
        now = int(time.time())
        expires_on = now + self.identity_token_seconds
        token = jwt.encode(
            {
                "iss": f"{base_url}/{identity.directory}/v2.0",
                "sub": identity.object_id,
                "oid": identity.object_id,
                "aud": FEDERATION_AUDIENCE,
                "iat": now,
                "nbf": now,
                "exp": expires_on,
            },
            self._identity_key,
            algorithm="HS256",
        )
        return _Reply(
            200,
            {
                "access_token": token,
                "expires_on": str(expires_on),
                "resource": FEDERATION_AUDIENCE,
                "token_type": "Bearer",
                "client_id": identity.client_id,
            },
        )

    def _assertion_kind(self, app: App, assertion: str, base_url: str) -> str | None:
        """ "federated" or "certificate" when `assertion` proves the app, else None."""
        import jwt

        try:
            header = jwt.get_unverified_header(assertion)
            if header.get("alg") == "HS256":
                claims = jwt.decode(
                    assertion,
                    self._identity_key,
                    algorithms=["HS256"],
                    audience=FEDERATION_AUDIENCE,
                )
                trusted = any(
                    (f.issuer, f.subject) == (claims.get("iss"), claims.get("sub"))
                    for f in app.federated
                )
                return "federated" if trusted else None
            token_endpoint = f"{base_url}/{app.directory}/oauth2/v2.0/token"
            for certificate in app.certificates:
                try:
                    claims = jwt.decode(
                        assertion,
                        certificate.public_key(),
                        algorithms=["PS256", "RS256"],
                        audience=token_endpoint,
                    )
                except jwt.InvalidSignatureError:
                    continue
                if claims.get("iss") == claims.get("sub") == app.client_id:
                    return "certificate"
        except jwt.PyJWTError:
            return None
        return None

    def _token(self, directory: str, body: bytes, base_url: str) -> _Reply:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return _Reply(
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": "AADSTS70003: only client_credentials",
                },
            )
        with self._lock:
            app = self.apps.get((directory, form.get("client_id", "")))
        if app is None:
            return _Reply(
                400,
                {
                    "error": "unauthorized_client",
                    "error_description": "AADSTS700016: Application not found in the directory.",
                },
            )
        assertion = form.get("client_assertion")
        if assertion is not None or "client_assertion_type" in form:
            kind = None
            if form.get("client_assertion_type") == JWT_BEARER and "client_secret" not in form:
                kind = self._assertion_kind(app, assertion or "", base_url)
            if kind is None:
                return _Reply(
                    401,
                    {
                        "error": "invalid_client",
                        "error_description": "AADSTS700027: Client assertion failed "
                        "signature validation, or no federated credential matches it.",
                    },
                )
        elif app.client_secret is not None and secrets.compare_digest(
            app.client_secret, form.get("client_secret", "")
        ):
            kind = "secret"
        else:
            return _Reply(
                401,
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                },
            )
        with self._lock:
            self.token_requests.append({"clientId": app.client_id, "credential": kind})
        token = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        with self._lock:
            self._tokens[token] = (directory, app.client_id, time.time() + 3600)
        return _Reply(
            200,
            {
                "token_type": "Bearer",
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": token,
            },
        )

    def _caller(self, headers: Any) -> str:
        """The directory of a valid bearer token, or a 401."""
        auth = headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        with self._lock:
            grant = self._tokens.get(token)
        if grant is None or grant[2] < time.time():
            raise _graph_error(
                401, "InvalidAuthenticationToken", "Access token is empty or invalid."
            )
        return grant[0]

    # graph

    def _find_user(self, directory: str, ref: str) -> User:
        with self._lock:
            for user in self.users.values():
                if user.directory == directory and ref.lower() in (
                    user.id.lower(),
                    user.user_principal_name.lower(),
                ):
                    return user
        raise _graph_error(
            404,
            "Request_ResourceNotFound",
            f"Resource '{ref}' does not exist or one of its queried reference-property objects "
            "are not present.",
        )

    def _organizer(self, headers: Any, ref: str) -> User:
        user = self._find_user(self._caller(headers), ref)
        if not user.policy_granted:
            raise _graph_error(403, "Forbidden", POLICY_MISSING_MESSAGE)
        return user

    def _get_user(self, headers: Any, ref: str) -> _Reply:
        return _Reply(200, self._find_user(self._caller(headers), ref).resource())

    @staticmethod
    def _json(body: bytes) -> dict[str, Any]:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise _graph_error(400, "BadRequest", "Request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise _graph_error(400, "BadRequest", "Request body must be an object")
        return data

    def _create_or_get(self, headers: Any, ref: str, body: bytes) -> _Reply:
        organizer = self._organizer(headers, ref)
        data = self._json(body)
        unknown = set(data) - _CREATE_OR_GET_FIELDS
        if unknown:
            raise _graph_error(400, "BadRequest", f"createOrGet does not accept {sorted(unknown)}")
        external_id = data.get("externalId")
        if not isinstance(external_id, str) or not external_id:
            raise _graph_error(400, "BadRequest", "externalId is required")
        evolved = "include-unknown-enum-members" in headers.get("Prefer", "")
        with self._lock:
            for meeting in self.meetings.values():
                if meeting.organizer_id == organizer.id and meeting.external_id == external_id:
                    # Returned unchanged, as Graph does (even after the meeting was deleted).
                    return _Reply(200, meeting.resource(evolved))
            start = _parse_time(data.get("startDateTime", _now()), "startDateTime")
            end = _parse_time(
                data.get("endDateTime", _graph_time(start + timedelta(hours=1))), "endDateTime"
            )
            if end <= start:
                raise _graph_error(400, "BadRequest", "endDateTime must be after startDateTime")
            meeting_id = base64.b64encode(
                f"1*{organizer.id}*0**19:meeting_{uuid.uuid4().hex}@thread.v2".encode()
            ).decode()
            thread = secrets.token_urlsafe(24)
            meeting = Meeting(
                id=meeting_id,
                organizer_id=organizer.id,
                external_id=external_id,
                subject=data.get("subject"),
                start=_graph_time(start),
                end=_graph_time(end),
                join_url=(
                    "https://teams.microsoft.com/l/meetup-join/19%3ameeting_"
                    f"{thread}%40thread.v2/0?context=%7b%22Tid%22%3a%22{organizer.directory}"
                    f"%22%2c%22Oid%22%3a%22{organizer.id}%22%7d"
                ),
                created=_now(),
            )
            # A new meeting's presenters are everyone: a presenter role does not count yet.
            meeting.participants = _with_roles(data, meeting.allowed_presenters)
            self.meetings[meeting.id] = meeting
        return _Reply(201, meeting.resource(evolved))

    def _meeting(self, organizer: User, meeting_id: str) -> Meeting:
        meeting = self.meetings.get(meeting_id)
        if meeting is None or meeting.deleted or meeting.organizer_id != organizer.id:
            raise _graph_error(404, "NotFound", "The specified meeting was not found.")
        return meeting

    def _get_meeting(self, headers: Any, ref: str, meeting_id: str) -> _Reply:
        organizer = self._organizer(headers, ref)
        evolved = "include-unknown-enum-members" in headers.get("Prefer", "")
        with self._lock:
            return _Reply(200, self._meeting(organizer, meeting_id).resource(evolved))

    def _patch(self, headers: Any, ref: str, meeting_id: str, body: bytes) -> _Reply:
        organizer = self._organizer(headers, ref)
        data = self._json(body)
        unknown = set(data) - _PATCH_FIELDS
        if unknown:
            raise _graph_error(400, "BadRequest", f"PATCH does not accept {sorted(unknown)}")
        if ("startDateTime" in data) != ("endDateTime" in data):
            raise _graph_error(400, "BadRequest", "startDateTime and endDateTime go together")
        evolved = "include-unknown-enum-members" in headers.get("Prefer", "")
        with self._lock:
            meeting = self._meeting(organizer, meeting_id)
            if "startDateTime" in data:
                start = _parse_time(data["startDateTime"], "startDateTime")
                end = _parse_time(data["endDateTime"], "endDateTime")
                if end <= start:
                    raise _graph_error(400, "BadRequest", "endDateTime must be after startDateTime")
                meeting.start, meeting.end = _graph_time(start), _graph_time(end)
            if "subject" in data:
                meeting.subject = data["subject"]
            lobby = data.get("lobbyBypassSettings")
            if isinstance(lobby, dict):
                meeting.lobby_scope = lobby.get("scope", meeting.lobby_scope)
                meeting.dial_in_bypass = bool(
                    lobby.get("isDialInBypassEnabled", meeting.dial_in_bypass)
                )
            meeting.allowed_presenters = data.get("allowedPresenters", meeting.allowed_presenters)
            if "participants" in data:
                # The whole list, as Graph takes it: attendees left out are no longer invited.
                meeting.participants = _with_roles(data, meeting.allowed_presenters)
            meeting.allow_meeting_chat = data.get("allowMeetingChat", meeting.allow_meeting_chat)
            meeting.entry_exit_announced = bool(
                data.get("isEntryExitAnnounced", meeting.entry_exit_announced)
            )
            meeting.record_automatically = bool(
                data.get("recordAutomatically", meeting.record_automatically)
            )
            meeting.patches += 1
            return _Reply(200, meeting.resource(evolved))

    def _delete(self, headers: Any, ref: str, meeting_id: str) -> _Reply:
        organizer = self._organizer(headers, ref)
        with self._lock:
            self._meeting(organizer, meeting_id).deleted = True
        return _Reply(204)

    def _reports_of(self, headers: Any, ref: str, meeting_id: str) -> list[dict[str, Any]]:
        organizer = self._organizer(headers, ref)
        if not self.artifacts_granted:
            raise _graph_error(403, "Forbidden", ARTIFACTS_FORBIDDEN_MESSAGE)
        return self._meeting(organizer, meeting_id).reports

    def _list_reports(self, headers: Any, ref: str, meeting_id: str) -> _Reply:
        """The 50 most recent reports, without their records (as Graph lists them)."""
        with self._lock:
            reports = self._reports_of(headers, ref, meeting_id)[-50:]
            listed = [{k: v for k, v in r.items() if k != "attendanceRecords"} for r in reports]
        return _Reply(200, {"value": listed})

    def _get_report(
        self, headers: Any, ref: str, meeting_id: str, report_id: str, query: dict[str, Any]
    ) -> _Reply:
        """One report; its records only with `$expand=attendanceRecords`."""
        with self._lock:
            report = next(
                (r for r in self._reports_of(headers, ref, meeting_id) if r["id"] == report_id),
                None,
            )
            if report is None:
                raise _graph_error(404, "NotFound", "The attendance report was not found.")
            expanded = "attendanceRecords" in ",".join(query.get("$expand", []))
            body = json.loads(json.dumps(report))
        if not expanded:
            body.pop("attendanceRecords")
        return _Reply(200, body)

    def _send_mail(self, headers: Any, ref: str, body: bytes) -> _Reply:
        """JSON (a message resource) or, with `Content-Type: text/plain`, MIME form: the body
        is the base64 of the message's bytes. A MIME mail is kept as Graph would show it (the
        message resource) and as it came (`mime`: the body as received, base64)."""
        sender = self._find_user(self._caller(headers), ref)
        content_type = str(headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type == "text/plain":
            data = {
                "message": self._mime_message(body),
                "saveToSentItems": True,
                "mime": body.decode("ascii"),
            }
        else:
            data = self._json(body)
        if not isinstance(data.get("message"), dict):
            raise _graph_error(400, "ErrorInvalidRequest", "message is required")
        with self._lock:
            self.mail.append({"from": sender.user_principal_name, **data})
        return _Reply(202)

    @staticmethod
    def _mime_message(body: bytes) -> dict[str, Any]:
        """The message resource of a MIME-form sendMail body, or Graph's 400 for one that is
        not base64 or not a message with recipients."""
        import binascii
        import email
        import email.policy
        from email.message import EmailMessage

        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise _graph_error(
                400,
                "ErrorMimeContentInvalidBase64String",
                "Invalid base64 string for MIME content.",
            ) from None
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        to = parsed["To"]
        if not isinstance(parsed, EmailMessage) or to is None or not to.addresses:
            raise _graph_error(400, "ErrorMimeContentInvalid", "The MIME content is invalid.")

        def address(a: Any) -> dict[str, Any]:
            entry = {"address": a.addr_spec}
            return {"emailAddress": entry | ({"name": a.display_name} if a.display_name else {})}

        message: dict[str, Any] = {
            "subject": str(parsed["Subject"] or ""),
            "toRecipients": [address(a) for a in to.addresses],
            "attachments": [
                {
                    "@odata.type": "#microsoft.graph.fileAttachment",
                    "name": part.get_filename(),
                    "contentType": part.get_content_type(),
                    "contentBytes": base64.b64encode(bytes(part.get_payload(decode=True))).decode(),
                }
                for part in parsed.iter_attachments()
            ],
        }
        if parsed["From"] is not None and parsed["From"].addresses:
            message["from"] = address(parsed["From"].addresses[0])
        if parsed["Reply-To"] is not None:
            message["replyTo"] = [address(a) for a in parsed["Reply-To"].addresses]
        html = parsed.get_body(preferencelist=("html",))
        text = parsed.get_body(preferencelist=("plain",))
        if html is not None:
            message["body"] = {"contentType": "HTML", "content": html.get_content()}
        elif text is not None:
            message["body"] = {"contentType": "Text", "content": text.get_content()}
        # A text/calendar part makes Exchange send a meeting message, not a plain one.
        for part in parsed.walk():
            if part.get_content_type() == "text/calendar" and not part.is_attachment():
                kind = {"REQUEST": "meetingRequest", "CANCEL": "meetingCancelled"}
                message["meetingMessageType"] = kind.get(
                    str(part.get_param("method") or "").upper(), "none"
                )
        return message

    # control

    def _control(self, method: str, parts: list[str], body: bytes) -> _Reply:
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return _Reply(400, {"error": "the body is not valid JSON"})
        if not isinstance(data, dict):
            return _Reply(400, {"error": "the body must be a JSON object"})
        if parts == ["state"] and method == "GET":
            return _Reply(200, self.snapshot())
        if parts == ["reset"] and method == "POST":
            self.reset()
            return _Reply(204)
        if parts == ["faults"] and method == "POST":
            allowed = {f for f in Fault.__dataclass_fields__ if f not in ("seen", "applied")}
            try:
                fault = self.add_fault(
                    Fault(**{_snake(k): v for k, v in data.items() if _snake(k) in allowed})
                )
            except (TypeError, ValueError) as exc:
                return _Reply(400, {"error": str(exc)})
            return _Reply(201, asdict(fault))
        if parts == ["faults"] and method == "DELETE":
            self.clear_faults()
            return _Reply(204)
        if parts == ["users"] and method == "POST":
            user = self.add_user(
                data["directory"],
                data["userPrincipalName"],
                data.get("displayName", ""),
                policy_granted=data.get("policyGranted", True),
            )
            return _Reply(201, asdict(user))
        if len(parts) == 2 and parts[0] == "meetings" and method in ("DELETE", "PATCH"):
            return self._control_meeting(method, parts[1], data)
        attendance = len(parts) in (3, 4) and parts[0] == "meetings" and parts[2] == "attendance"
        if attendance and method == "POST":
            return self._control_attendance(parts[1], parts[3:], data)
        if parts == ["artifacts"] and method == "POST":
            if not isinstance(data.get("granted"), bool):
                return _Reply(400, {"error": "give granted: true or false"})
            self.artifacts_granted = data["granted"]
            return _Reply(204)
        return _Reply(404, {"error": "unknown control call"})

    def _control_attendance(self, meeting_id: str, rest: list[str], data: dict[str, Any]) -> _Reply:
        """POST meetings/{id}/attendance {who, join, leave, displayName?}: someone attended;
        POST meetings/{id}/attendance/publish: the session's report appears."""
        try:
            if rest == ["publish"]:
                return _Reply(201, {"reportId": self.publish_attendance(meeting_id)})
            if rest:
                return _Reply(404, {"error": "unknown control call"})
            unknown = set(data) - {"who", "join", "leave", "displayName"}
            if unknown or not isinstance(data.get("who"), str):
                return _Reply(400, {"error": "give who, join and leave (and displayName)"})
            self.attend(
                meeting_id,
                data["who"],
                _parse_time(data.get("join"), "join"),
                _parse_time(data.get("leave"), "leave"),
                display_name=data.get("displayName"),
            )
            return _Reply(204)
        except KeyError:
            return _Reply(404, {"error": f"no live meeting {meeting_id!r}"})
        except _Reply as bad_time:
            return _Reply(400, {"error": bad_time.body["error"]["message"]})
        except ValueError as exc:
            return _Reply(400, {"error": str(exc)})

    def _control_meeting(self, method: str, meeting_id: str, data: dict[str, Any]) -> _Reply:
        try:
            if method == "DELETE":
                self.delete_meeting_by_hand(meeting_id)
                return _Reply(204)
            unknown = set(data) - {"startDateTime", "endDateTime"}
            if unknown or not data:
                return _Reply(400, {"error": "give startDateTime and/or endDateTime only"})
            times = {
                name: _parse_time(data[key], key)
                for name, key in (("start", "startDateTime"), ("end", "endDateTime"))
                if key in data
            }
            meeting = self.edit_meeting_by_hand(meeting_id, **times)
        except KeyError:
            return _Reply(404, {"error": f"no live meeting {meeting_id!r}"})
        except _Reply as bad_time:
            return _Reply(400, {"error": bad_time.body["error"]["message"]})
        except ValueError as exc:
            return _Reply(400, {"error": str(exc)})
        with self._lock:
            return _Reply(200, meeting.resource(True))


def _odata_string(literal: str) -> str | None:
    """The value of an OData string literal (`'it''s'` is `it's`), or None if it is not one."""
    if len(literal) < 2 or literal[0] != "'" or literal[-1] != "'":
        return None
    inner = literal[1:-1]
    if "'" in inner.replace("''", ""):
        return None
    return inner.replace("''", "'") or None


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} has no time zone")
    return moment.astimezone(UTC)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _handler_for(emulator: GraphEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                reply = emulator.handle(
                    self.command, url.path, parse_qs(url.query), self.headers, body
                )
            except ConnectionAbortedError:
                self.close_connection = True
                return
            status, headers, payload = reply.wire()
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7443)
    parser.add_argument("--certs", type=Path, default=Path(".local/certs"))
    args = parser.parse_args()
    tls = make_local_tls(args.certs)
    emulator = GraphEmulator(tls, port=args.port).start()
    print(f"Graph emulator on {emulator.base_url} (trust {tls.bundle_file})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        emulator.stop()


if __name__ == "__main__":
    main()
