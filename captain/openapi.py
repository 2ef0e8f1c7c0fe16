"""The OpenAPI documents of the captain's and the sailor's endpoints, made from the types.

Request bodies are the Structs of `common.messages`, exactly those the endpoints decode; the
answers of the views are described by the Structs below. A view may carry more fields than
described here (a client must ignore those it does not know), but every field described must
have the type described: the API fuzzing test checks live answers against them. Served at
`GET /openapi.json` by both daemons.
"""

import functools
from typing import Any, Literal, NamedTuple

import msgspec

from common import messages as msg
from common import signing
from eventlog.events import ChoreStatus

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1"
REF_TEMPLATE = "#/components/schemas/{name}"


# --- the answers, as the documents describe them ----------------------------------------------


class View(msgspec.Struct, kw_only=True):
    pass


class ErrorAnswer(View):
    """A refusal: what is wrong, and the field at fault when there is one."""

    error: str
    field: str | msgspec.UnsetType = msgspec.UNSET
    # For a crew list: each wrong entry, by its index in the list.
    problems: list[dict[str, Any]] | msgspec.UnsetType = msgspec.UNSET


class HealthAnswer(View):
    ok: bool


class GpuView(View):
    type: str
    vram: int


class SailorView(View):
    name: str
    ip: str
    port: int
    services: list[str]
    status: Literal["down", "idle", "busy", "full"]
    cpus: int
    cores: list[int]
    gpus: list[GpuView]
    ram: int
    cpus_in_use: int
    cores_in_use: list[int]
    gpus_in_use: list[int]
    ram_in_use: int
    max_time_s: int | None
    chores: int
    last_seen: int | None
    registered: bool
    max_time: str | None | msgspec.UnsetType = msgspec.UNSET


class UserView(View):
    name: str
    uid: str
    time_limit: str | None
    chores_limit: int | None
    notes: str


class RemovedAnswer(View):
    removed: str


class ResourcesView(View):
    cpus: int
    gpus: int
    gpu_type: str | None
    vram: int | None
    ram: int | None


class ChoreView(View):
    chore_id: str
    script: str
    service: str | None
    ressources: ResourcesView
    sailor: str | None
    sailor_asked: str | None
    owner: int
    owner_name: str
    status: ChoreStatus
    reason: str
    requested_at: float
    start: float | None
    ended_at: float | None
    exit_code: int | None
    signal: int | None
    cores: list[int]
    gpu_ids: list[int]
    memory_limit: str
    stdout: str
    stderr: str


class HistoryAnswer(View):
    events: list[dict[str, Any]]
    chore_id: str | None = None


class LoginBody(View, forbid_unknown_fields=True):
    user: str
    password: str


class SessionView(View):
    user: str
    uid: int
    admin: bool
    csrf: str
    expires_at: int


class SessionAnswer(View):
    session: SessionView | None


class SessionInfo(View):
    session: SessionView | None
    login_refusal: str | None = None
    https_port: int | None = None


# --- the operations -----------------------------------------------------------------------


class Operation(NamedTuple):
    method: str
    path: str
    summary: str
    body: type | None
    answers: dict[int, Any]
    caller: Literal["user", "sailor", "captain", "anyone"]
    query: tuple[str, ...] = ()
    # What the 200 answer is, when it is not JSON (the event stream).
    media_type: str = "application/json"
    # Fuzzed by the tests: a PAM login waits seconds per failure and is rate-limited, and
    # an event stream never ends, so those two are described but called by their own tests.
    fuzzed: bool = True


REFUSED = ErrorAnswer
USER_REFUSALS = {400: REFUSED, 403: REFUSED, 413: REFUSED}
SIGNED_REFUSALS = {400: REFUSED, 401: REFUSED, 403: REFUSED, 413: REFUSED}

CAPTAIN_OPERATIONS = (
    Operation("post", "/user_chore", "Ask for a chore, as the calling user", msg.ChoreRequest,
              {201: ChoreView, **USER_REFUSALS, 404: REFUSED, 429: REFUSED, 503: REFUSED},
              "user"),
    Operation("get", "/user_consult", "The caller's chores (everyone's with all=1, root only; "
              "as they were at `at` when given)",
              None, {200: dict[str, ChoreView], **USER_REFUSALS}, "user", ("all", "at")),
    Operation("post", "/user_consult", "The same as GET, with the choice in the body",
              msg.ConsultRequest, {200: dict[str, ChoreView], **USER_REFUSALS}, "user"),
    Operation("post", "/user_cancel", "Cancel one of the caller's chores (any, for root)",
              msg.CancelRequest,
              {200: ChoreView, **USER_REFUSALS, 404: REFUSED, 409: REFUSED, 503: REFUSED},
              "user"),
    Operation("get", "/crew", "The crew and the state of each sailor (as it was at `at`, an "
              "ISO time or epoch seconds, when given)", None,
              {200: dict[str, SailorView], 400: REFUSED, 403: REFUSED}, "user", ("at",)),
    Operation("post", "/prereg", "Add a sailor to the crew list (root only)", msg.PreregRequest,
              {201: SailorView, **USER_REFUSALS, 409: REFUSED, 503: REFUSED}, "user"),
    Operation("post", "/prereg_crew", "Add a whole crew list, or nothing if any entry is "
              "wrong (root only; each problem is listed with its entry's index)",
              msg.CrewListRequest,
              {201: dict[str, SailorView], **USER_REFUSALS, 503: REFUSED}, "user"),
    Operation("post", "/sailor_set", "Change a sailor of the crew list (root only)",
              msg.SailorSetRequest,
              {200: SailorView, **USER_REFUSALS, 404: REFUSED, 409: REFUSED, 503: REFUSED},
              "user"),
    Operation("post", "/sailor_remove", "Take a sailor off the crew list (root only)",
              msg.SailorRemoveRequest,
              {200: RemovedAnswer, **USER_REFUSALS, 404: REFUSED, 409: REFUSED, 503: REFUSED},
              "user"),
    Operation("get", "/users", "The users' limits", None,
              {200: dict[str, UserView], 403: REFUSED}, "user"),
    Operation("post", "/user_upsert", "Set a user's limits (root only)",
              msg.UserUpsertRequest, {200: UserView, **USER_REFUSALS, 503: REFUSED}, "user"),
    Operation("post", "/sailor_register", "A sailor says what it has and what it runs",
              msg.SailorRegisterRequest, {200: msg.SailorAnswer, **SIGNED_REFUSALS,
                                          503: REFUSED}, "sailor"),
    Operation("post", "/sailor_awake", "A sailor says it is still there",
              msg.SailorAwakeRequest, {200: msg.SailorAnswer, **SIGNED_REFUSALS}, "sailor"),
    Operation("post", "/sailor_report", "A sailor reports how its chores are doing",
              msg.SailorReportRequest, {200: msg.SailorReportAnswer, **SIGNED_REFUSALS,
                                        503: REFUSED}, "sailor"),
    Operation("get", "/history", "The events of one chore (its owner or root), or the latest "
              "events of the cluster", None,
              {200: HistoryAnswer, 400: REFUSED, 403: REFUSED, 404: REFUSED}, "user",
              ("chore", "limit")),
    Operation("get", "/events", "Server-sent events of the durable log, as they are recorded "
              "(`id:` is the event's seq; Last-Event-ID or since= replays from a position)",
              None, {200: str, 400: REFUSED}, "anyone", ("chore", "sailor", "user", "since"),
              media_type="text/event-stream", fuzzed=False),
    Operation("get", "/web/crew", "The crew for the dashboard: no user and no script",
              None, {200: dict[str, SailorView]}, "anyone"),
    Operation("post", "/login", "Open a dashboard session (PAM checks the user and password)",
              LoginBody, {200: SessionAnswer, 400: REFUSED, 401: REFUSED, 403: REFUSED,
                          429: REFUSED}, "anyone", fuzzed=False),
    Operation("post", "/logout", "Close the dashboard session", None,
              {200: SessionAnswer, 403: REFUSED}, "anyone"),
    Operation("get", "/session", "Who is logged in on the dashboard, if anyone", None,
              {200: SessionInfo}, "anyone"),
    Operation("get", "/health", "Whether the captain answers", None, {200: HealthAnswer},
              "anyone"),
    Operation("get", "/openapi.json", "This document", None, {200: dict[str, Any]}, "anyone"),
)

SAILOR_OPERATIONS = (
    Operation("post", "/captain_request", "The captain orders a chore to run here",
              msg.ChoreOrder, {200: msg.OrderAnswer, **SIGNED_REFUSALS}, "captain"),
    Operation("post", "/captain_cancels", "The captain asks to stop a chore",
              msg.CancelOrder, {200: msg.CancelAnswer, **SIGNED_REFUSALS}, "captain"),
    Operation("get", "/openapi.json", "This document", None, {200: dict[str, Any]}, "anyone"),
)

CALLERS = {
    "user": "Called by a user of the captain machine, known by the kernel as the owner of the "
            "connecting socket; refused (403) from another machine.",
    "sailor": "Called by a sailor: from an address of the crew list (else 403), signed with "
              "the cluster key (else 401). Root on the captain machine may call unsigned.",
    "captain": "Called by the captain: from its address (else 403), signed with the cluster "
               "key (else 401). Root on the sailor machine may call unsigned.",
    "anyone": "Open to anyone.",
}

SIGNATURE_SCHEMES = {
    "clusterSignature": {
        "type": "apiKey", "in": "header", "name": signing.SIGNATURE_HEADER,
        "description": f"HMAC-SHA256 with the cluster key over the method, the path, the "
                       f"{signing.TIME_HEADER} and {signing.NONCE_HEADER} headers and the body "
                       f"(each of the first four followed by a newline). A nonce is accepted "
                       f"once; the time may differ from the receiver's by "
                       f"{signing.MAX_SKEW_S:.0f} s at most.",
    },
    "clusterNonce": {"type": "apiKey", "in": "header", "name": signing.NONCE_HEADER},
    "clusterTime": {"type": "apiKey", "in": "header", "name": signing.TIME_HEADER},
}


def build_document(title: str, operations: tuple[Operation, ...]) -> dict[str, Any]:
    """An OpenAPI 3.1 document of the operations, with one shared set of schemas."""
    types: list[Any] = []
    for operation in operations:
        if operation.body is not None:
            types.append(operation.body)
        types.extend(operation.answers.values())
    schemas, components = msgspec.json.schema_components(types, ref_template=REF_TEMPLATE)
    schema_of = iter(schemas)

    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        item: dict[str, Any] = {
            "summary": operation.summary,
            "description": CALLERS[operation.caller],
            "operationId": f"{operation.method}_{operation.path.strip('/').replace('.', '_')}",
            "tags": [operation.caller],
        }
        if operation.body is not None:
            # An empty body reads as {}: it may be left out when no field is required.
            required = any(f.required for f in msgspec.structs.fields(operation.body))
            item["requestBody"] = {"required": required, "content": {
                "application/json": {"schema": next(schema_of)}}}
        if operation.query:
            item["parameters"] = [{"name": name, "in": "query", "required": False,
                                   "schema": {"type": "string"}} for name in operation.query]
        if operation.caller in ("sailor", "captain"):
            item["security"] = [{name: [] for name in SIGNATURE_SCHEMES}, {}]
        item["responses"] = {
            str(status): {"description": _describe(status), "content": {
                operation.media_type if status == 200 else "application/json":
                    {"schema": next(schema_of)}}}
            for status in operation.answers
        }
        paths.setdefault(operation.path, {})[operation.method] = item

    document_components: dict[str, Any] = {"schemas": components}
    if any(op.caller in ("sailor", "captain") for op in operations):
        document_components["securitySchemes"] = SIGNATURE_SCHEMES
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": API_VERSION},
        "paths": paths,
        "components": document_components,
    }


def _describe(status: int) -> str:
    return {
        200: "Done", 201: "Recorded", 400: "The body or a field is wrong (the field is named)",
        401: "Not signed with the cluster key, a replay, or a failed login",
        403: "This caller may not do this", 404: "No such chore, sailor or service",
        409: "In conflict with the current state", 413: "The body is too large",
        429: "The user's chores limit is reached, or too many failed logins",
        503: "The event log could not be written",
    }[status]


def captain_document() -> dict[str, Any]:
    return build_document("Captain", CAPTAIN_OPERATIONS)


def sailor_document() -> dict[str, Any]:
    return build_document("Sailor", SAILOR_OPERATIONS)


@functools.cache
def document_bytes(daemon: Literal["captain", "sailor"] = "captain") -> bytes:
    document = captain_document() if daemon == "captain" else sailor_document()
    return msgspec.json.encode(document)
