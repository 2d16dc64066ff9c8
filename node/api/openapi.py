"""The OpenAPI 3.1 description of the local API, built in code and served at /api/v1/openapi.json.

Written out by hand rather than generated from the router, so it says what clients may rely on;
tests keep it true: every route of the app is described and every description is a route, the
roles in ``x-gwx-roles`` are the roles the app enforces, and responses match the schemas. The
schemas are the shapes documented in :mod:`node.documents.contract`.
"""

from __future__ import annotations

from typing import Any

from exchange_protocol.kinds import Kind
from exchange_protocol.meta_schema import meta_schema
from exchange_protocol.model import DOC_ID_PATTERN, MAX_ID
from exchange_protocol.states import ReceiverStatus, SenderStatus
from pki.unit_code import UNIT_CODE_FORMAT, UNIT_CODE_PATTERN

Json = dict[str, Any]

SENDER_STATUSES = [s.value for s in SenderStatus]
RECEIVER_STATUSES = [s.value for s in ReceiverStatus]
KINDS = [k.value for k in Kind]


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Json) -> Json:
    return {"oneOf": [schema, {"type": "null"}]}


STR = {"type": "string"}
UNIT = {"type": "string", "pattern": UNIT_CODE_PATTERN, "format": UNIT_CODE_FORMAT,
        "description": "统一社会信用代码 (18 characters; the node also checks the check character)"}
DATETIME = {"type": "string", "format": "date-time"}
INT = {"type": "integer", "minimum": 0}
COUNTS = {"type": "object", "additionalProperties": INT}


def _object(required: dict[str, Json], optional: dict[str, Json] | None = None) -> Json:
    return {"type": "object", "required": list(required), "properties": {**required, **(optional or {})}}


# 督办 (exchange_protocol.supervision.judge): how late a recipient is, as the node's calendar counts.
LATENESS: Json = {"overdue_by": {**_nullable(INT), "description": "seconds since the 办理时限, while overdue"},
                  "overdue_working_days": {**INT, "description": "working days wholly past since the deadline's day"}}

SCHEMAS: Json = {
    "Error": _object({"error": _object({"code": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"},
                                        "message": STR, "details": {"type": "object"}})}),
    "Health": _object({"ok": {"const": True}, "node_id": STR}),
    "RecipientView": _object({
        "unit": STR, "unit_name": _nullable(STR), "role": {"enum": ["主送", "抄送"]}, "node": _nullable(STR),
        "status": {"enum": SENDER_STATUSES}, "status_label": STR, "who": _nullable(STR),
        "when": _nullable(DATETIME), "reason": _nullable(STR), "urge_count": INT,
        "last_urged_at": _nullable(DATETIME), "overdue": {"type": "boolean"}},
        {"where": _nullable(_ref("Whereabouts")), **LATENESS}),
    "Whereabouts": _object({
        "message_id": STR, "line": {"type": "string", "description": "where it waits, in one plain line"},
        "stops": {"type": "array", "items": _object(
            {"node": STR, "state": {"enum": ["drafted", "waiting", "handed-on", "given-up", "delivered", "unknown"]}},
            {"next_hop": _nullable(STR), "since": _nullable(DATETIME), "attempts": INT,
             "next_attempt_at": _nullable(DATETIME), "queue_state": STR, "destination": STR,
             "error": _nullable(_object({"code": STR, "message": STR})),
             "next_hop_state": _nullable(_object({"state": STR, "since": _nullable(DATETIME), "failures": INT},
                                                 {"retry_at": _nullable(DATETIME),
                                                  "error": _nullable(_object({"code": STR, "message": STR}))}))})}}),
    "OutboxItem": _object({
        "doc_id": STR, "from_unit": STR, "title": STR, "kind": {"enum": KINDS}, "doc_number": _nullable(STR),
        "deadline": _nullable(DATETIME), "created_at": DATETIME, "counts": COUNTS,
        "overdue": {"type": "boolean"}}),
    "Tracking": _object({"doc": _ref("OutboxItem"), "recipients": {"type": "array", "items": _ref("RecipientView")}},
                        {"metadata": _ref("Meta"),  # these two in GET /documents/{id} of a document sent
                         "attachments": {"type": "array", "items": _object({"name": STR, "size": INT})},
                         "forwarded": _nullable(_ref("Forwarded")),
                         # 转发 of this document by its recipients, as their nodes told the issuer (转发告知)
                         "forwarded_on": {"type": "array", "items": _object(
                             {"unit": UNIT, "unit_name": _nullable(STR), "cover_doc_id": STR,
                              "units": {"type": "array", "items": UNIT}, "count": INT, "by": _nullable(STR),
                              "at": DATETIME, "node": STR})}}),
    "Forwarded": _object({
        "doc_id": STR, "title": _nullable(STR), "from_unit": _nullable(STR), "recipients": {"type": "array", "items":
            _object({"unit": UNIT, "unit_name": _nullable(STR), "node": STR, "status": {"enum": SENDER_STATUSES},
                     "status_label": STR, "who": _nullable(STR), "when": _nullable(DATETIME),
                     "reason": _nullable(STR)})}}),
    "ForwardResult": {"allOf": [_ref("SubmitResult"), _object({"forwarded": _ref("Forwarded")})]},
    "TrackingSummary": {**_object({"doc": _ref("OutboxItem")}), "additionalProperties": False},
    "InboxItem": _object({
        "doc_id": STR, "unit": STR, "from_unit": STR, "title": STR, "kind": {"enum": KINDS},
        "urgency": _nullable(STR), "deadline": _nullable(DATETIME), "status": {"enum": RECEIVER_STATUSES},
        "status_label": STR, "signed_by": _nullable(STR), "signed_at": _nullable(DATETIME),
        "return_reason": _nullable(STR), "urge_count": INT, "received_at": DATETIME,
        "overdue": {"type": "boolean"}},
        {**LATENESS, "doc_number": _nullable(STR), "escalated_at": _nullable(DATETIME),
         "escalated_to": _nullable(UNIT), "from_unit_name": _nullable(STR)}),
    "SupervisionItem": _object({
        "id": INT, "doc_id": STR, "unit": UNIT, "unit_name": _nullable(STR), "supervisor": UNIT, "from_unit": UNIT,
        "title": STR, "deadline": DATETIME, "escalated_at": DATETIME, "working_days_late": INT,
        "overdue_by": _nullable(INT), "status": {"enum": ["open", "settled"]}, "status_label": STR,
        "settled_at": _nullable(DATETIME), "settled_by": _nullable(STR),
        "settled_as": _nullable({"enum": ["signed_for", "returned", "recalled"]}), "node": STR, "received_at": DATETIME}),
    "InboxDocument": {"allOf": [_ref("InboxItem"), _object({
        "metadata": _ref("Meta"),
        "verification": {"type": "object", "description": "the receiver's verification report"},
        # media_type is in service_api's shape but not (yet) in every answer: optional here.
        "attachments": {"type": "array", "items": _object({"name": STR, "size": INT}, {"media_type": STR})}},
        {"forwarded_by": UNIT, "cover_doc_id": _nullable(STR)})]},
    "SubmitResult": _object({"doc_id": STR, "recipients": {"type": "array", "items": _ref("RecipientView")}}),
    "Readiness": _object({"ready": {"type": "boolean"}, "checks": {"type": "array", "items": _object(
        {"name": {"enum": ["revocation", "certificates", "seals", "directory", "store", "disk"]},
         "verdict": {"enum": ["ok", "warn", "fail"]}, "message": STR}, {"code": STR})}}),
    "NodeStatus": _object({
        "node_id": STR, "units": {"type": "array"}, "readiness": _ref("Readiness"),
        "queues": {"type": "object", "additionalProperties": COUNTS},
        "peers": {"type": "array", "items": _object({
            "node_id": STR, "state": STR, "since": _nullable(STR), "failures": INT, "last_error": _nullable(STR),
            "refusal": _nullable(_object({"code": STR, "message": _nullable(STR), "at": STR, "envelopes": INT}))})},
        "inbound": COUNTS, "last_errors": {"type": "array"},
        "adapters": {"type": "object", "description": "adapter outbox rows by consumer and state (issue 9)",
                     "additionalProperties": _object({"pending": INT, "done": INT, "dead": INT, "last_dead": _nullable(
                         _object({"code": STR, "message": _nullable(STR), "at": STR}))})}}),
    "UnitsRequest": {"type": "object", "additionalProperties": False, "properties": {
        "units": {"type": "array", "minItems": 1, "uniqueItems": True, "items": UNIT,
                  "description": "recipient unit codes; left out: all that the action applies to"}}},
    "AddRecipientsRequest": {"type": "object", "additionalProperties": False, "required": ["units"],
                             "properties": {"units": {"type": "array", "minItems": 1, "uniqueItems": True,
                                                      "items": UNIT, "description": "units to add (补发)"}}},
    "ReturnRequest": {"type": "object", "additionalProperties": False, "required": ["reason"],
                      "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 500}}},
    "EmptyRequest": {"type": "object", "additionalProperties": False, "maxProperties": 0},
    "Submission": {"type": "object", "required": ["meta", "body"], "additionalProperties": False, "properties": {
        "meta": _ref("Meta"),
        "body": {"type": "string", "contentMediaType": "application/pdf",
                 "description": "正文: PDF, or OFD sent as application/ofd (sealed inside per GB/T 38540)"},
        "attachment": {"type": "array", "items": {"type": "string", "contentMediaType": "application/octet-stream"},
                       "description": "附件, each named by its part's filename (one file name, no path)"}}},
}

ERRORS = {
    "400": "the request cannot be used as given (API_BAD_*, DOC_* in META.json, PKG_BAD_INPUT …)",
    "401": "missing or unknown token (API_UNAUTHENTICATED)",
    "403": "role or unit not allowed (API_FORBIDDEN)",
    "404": "no such document (API_NOT_FOUND); a unit this node does not host (LEDGER_UNIT_NOT_HOSTED)",
    "409": "the state does not allow this (STATE_*, STORE_DUPLICATE, NODE_NO_SEAL); 撤回/催办 that applies "
           "to no recipient (DOC_NO_ELIGIBLE_RECIPIENT); a document recalled (撤回) from your unit, whose "
           "content is withdrawn (DOC_RECALLED)",
    "413": "too large (API_TOO_LARGE)",
    "422": "a verification said no (PKG_*, SEAL_*, PKI_CERT_*)",
    "503": "try again later (NODE_UNAVAILABLE, STORE_CONTENDED)",
}


def _json_content(schema: Json) -> Json:
    return {"application/json": {"schema": schema}}


def _op(summary: str, roles: list[str], ok: Json, *, status: str = "200", params: list[Json] | None = None,
        body: Json | None = None, errors: tuple[str, ...] = ("400", "401", "403"), ok_content: Json | None = None,
        op_id: str) -> Json:
    op: Json = {"operationId": op_id, "summary": summary, "x-gwx-roles": roles,
                "responses": {status: {"description": "OK", "content": ok_content or _json_content(ok)}}}
    op["security"] = [{"bearer": []}] if roles else []
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = body
    for code in errors:
        op["responses"][code] = {"description": ERRORS[code], "content": _json_content(_ref("Error"))}
    return op


def _readyz_op() -> Json:
    op = _op("readiness: 200 when nothing blocks the node, 503 naming each failing check", [],
             _ref("Readiness"), errors=(), op_id="readyz")
    op["responses"]["503"] = {"description": "not ready", "content": _json_content(_ref("Readiness"))}
    return op


DOC_ID = {"name": "doc_id", "in": "path", "required": True,
          "schema": {"type": "string", "pattern": DOC_ID_PATTERN, "minLength": 1, "maxLength": MAX_ID},
          "description": "公文标识"}


def _filters(statuses: list[str], unit_meaning: str) -> list[Json]:
    return [
        {"name": "status", "in": "query", "schema": {"enum": statuses}},
        {"name": "kind", "in": "query", "schema": {"enum": KINDS}, "description": "文种"},
        {"name": "overdue", "in": "query", "schema": {"enum": ["true", "false"]}},
        {"name": "unit", "in": "query", "schema": UNIT, "description": unit_meaning},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
        {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 10**18 - 1},
         "description": "paging: the ``id`` of the last item of the previous page"},
    ]


def _json_body(schema: str, required: bool = False) -> Json:
    return {"required": required, "content": _json_content(_ref(schema))}


SCHEMAS["ArchiveRequest"] = {"type": "object", "additionalProperties": False, "properties": {
    "reason": {"type": "string", "minLength": 1, "maxLength": 500,
               "description": "why a document whose handling is not finished is archived now"}}}


# --- the 台账 (node.api.ledger_routes, node.documents.ledger) -------------------------------------------
LEDGER_DATE = {"type": "string", "format": "date", "pattern": r"^(19[7-9][0-9]|2[0-9]{3})-[0-9]{2}-[0-9]{2}$",
               "description": "a Beijing date, inclusive"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SCHEMAS["LedgerStats"] = _object({
    "side": {"enum": ["sent", "received"]}, "period": {"enum": ["day", "week", "month"]},
    "by": {"enum": ["unit", "counterpart"]},
    "from": _nullable(STR), "to": _nullable(STR), "timezone": STR, "unit_meaning": STR,
    "rows": {"type": "array", "items": _object({
        "unit": STR, "unit_name": _nullable(STR), "counterpart": _nullable(STR), "counterpart_name": _nullable(STR),
        "period_start": {"type": "string", "format": "date"},
        "documents": INT, "rows": INT, "signed": INT, "sign_median_s": _nullable({"type": "number"}),
        "sign_p90_s": _nullable({"type": "number"}), "overdue": INT, "overdue_rate": {"type": "number"},
        "returned": INT, "returned_rate": {"type": "number"}})}})


def _ledger_filters(statuses: list[str], counterpart: str) -> list[Json]:
    return [
        {"name": "from", "in": "query", "schema": LEDGER_DATE, "description": "first day (Beijing date)"},
        {"name": "to", "in": "query", "schema": LEDGER_DATE, "description": "last day (Beijing date); not before from"},
        {"name": "kind", "in": "query", "schema": {"enum": KINDS}, "description": "文种"},
        {"name": "status", "in": "query", "schema": {"enum": statuses}},
        {"name": "unit", "in": "query", "schema": UNIT,
         "description": "whose ledger: a clerk's own unit only (another is 403); operators (statistics): a hosted unit"},
        {"name": "counterpart", "in": "query", "schema": UNIT, "description": counterpart},
    ]


def _ledger_paths() -> Json:
    paths: Json = {}
    for side, statuses, counterpart, label in (
            ("sent", SENDER_STATUSES, "recipient unit (收文单位)", "发文台账: one row per recipient"),
            ("received", RECEIVER_STATUSES, "sending unit (发文机关)", "收文台账: one row per document received")):
        export = _op(f"{label}, as CSV (UTF-8 with BOM, formula-like cells neutralised) or XLSX; the clerk's "
                     "own unit; X-Gwx-Ledger-Rows says how many rows follow", ["clerk"], {},
                     params=[*_ledger_filters(statuses, counterpart),
                             {"name": "format", "in": "query", "schema": {"enum": ["csv", "xlsx"], "default": "csv"}}],
                     errors=("400", "401", "403", "503"), op_id=f"ledger{side.title()}",
                     ok_content={"text/csv": {"schema": STR},
                                 XLSX: {"schema": {"type": "string", "contentMediaType": XLSX}}})
        stats = _op(f"statistics of the {side} ledger per unit and period: counts, time to 签收 (median, p90), "
                    "overdue and returned rates", ["clerk", "operator"], _ref("LedgerStats"),
                    params=[*_ledger_filters(statuses, counterpart),
                            {"name": "period", "in": "query", "schema": {"enum": ["day", "week", "month"],
                                                                          "default": "month"}},
                            {"name": "by", "in": "query", "schema": {"enum": ["unit", "counterpart"], "default": "unit"},
                             "description": "counterpart: each unit's rows split by recipient (sent) or sender"}],
                    errors=("400", "401", "403", "404", "503"), op_id=f"ledger{side.title()}Stats")
        paths[f"/api/v1/ledger/{side}"] = {"get": export}
        paths[f"/api/v1/ledger/{side}/stats"] = {"get": stats}
    return paths


# --- the operator's send queue (node.api.queue_routes, node.federation.queue_admin) ------------------
SCHEMAS["QueueRow"] = _object({
    "message_id": STR, "destination": {**STR, "description": "the next hop"}, "type": STR,
    "state": {"enum": ["incoming", "active", "deferred", "hold", "corrupt", "sent", "bounced"]}, "attempts": INT,
    "size": INT, "doc_id": {**_nullable(STR), "description": "公文标识 of our own message"},
    "created_at": DATETIME, "next_attempt_at": DATETIME, "expires_at": _nullable(DATETIME),
    "last_error": _nullable(_object({"code": STR, "message": STR}))})
SCHEMAS["QueueReason"] = {"type": "object", "additionalProperties": False, "properties": {
    "reason": {"type": "string", "maxLength": 500, "description": "recorded in the audit log; a purge's is told "
                                                                    "to the sender"}}}
MESSAGE_ID = {"name": "message_id", "in": "path", "required": True, "schema": STR}
QUEUE_ACTIONS = {
    "hold": "park a queued, deferred or in-flight envelope (an envelope already on the wire may still arrive)",
    "release": "let a held envelope go again, due now",
    "retry": "make a queued or deferred envelope due now and end its next hop's backoff",
    "purge": "give up on an envelope at rest with a reason: its sender's recipients turn failed (QUEUE_PURGED), "
             "a relayed one's origin gets a bounce; one in flight is 409 (hold it first)"}


def _queue_paths(operator: list[str]) -> Json:
    errors = ("400", "401", "403", "404", "409", "503")
    paths: Json = {"/api/v1/node/queue": {"get": _op(
        "the send queue, oldest first: unfinished envelopes (or those of the states asked), with the 公文标识 "
        "of our own", operator, {"type": "array", "items": _ref("QueueRow")}, op_id="queueList", params=[
            {"name": "destination", "in": "query", "schema": STR, "description": "next hop node id"},
            {"name": "state", "in": "query", "schema": SCHEMAS["QueueRow"]["properties"]["state"],
             "description": "repeatable"},
            {"name": "after", "in": "query", "schema": STR, "description": "paging: the last message id seen"},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500,
                                                        "default": 100}}], errors=errors)}}
    for action, summary in QUEUE_ACTIONS.items():
        body = _json_body("QueueReason", required=action == "purge") if action in ("hold", "purge") \
            else _json_body("EmptyRequest")
        paths[f"/api/v1/node/queue/{{message_id}}/{action}"] = {"post": _op(
            summary, operator, _ref("QueueRow"), params=[MESSAGE_ID], body=body, errors=errors,
            op_id=f"queue{action.title()}")}
    paths["/api/v1/node/queues/{destination}/retry"] = {"post": _op(
        "every queued or deferred envelope for a next hop due now, its backoff ended", operator,
        _object({"destination": STR, "retried": {"type": "array", "items": STR}}), op_id="queueRetryDestination",
        params=[{"name": "destination", "in": "path", "required": True, "schema": STR}],
        body=_json_body("EmptyRequest"), errors=errors)}
    return paths


def build_openapi(node_id: str = "") -> Json:
    clerk = ["clerk"]
    operator = ["operator"]
    doc_errors = ("400", "401", "403", "404", "409", "422", "503")
    paths: Json = {
        "/healthz": {"get": _op("liveness", [], _ref("Health"), errors=(), op_id="healthz")},
        "/readyz": {"get": _readyz_op()},
        "/metrics": {"get": _op("Prometheus metrics (text exposition format)", operator, {},
                                ok_content={"text/plain": {"schema": STR}}, op_id="metrics")},
        "/api/v1/openapi.json": {"get": _op("this document", [], {"type": "object"}, errors=(), op_id="openapi")},
        "/api/v1/schema/meta.json": {"get": _op(
            "the JSON Schema of META.json (also components/schemas/Meta)", [], {"type": "object"}, errors=(),
            op_id="metaSchema", ok_content={"application/schema+json": {"schema": {"type": "object"}}})},
        "/api/v1/documents": {"post": _op(
            "seal and send a document (发文) as the clerk's unit", clerk, _ref("SubmitResult"), status="201",
            body={"required": True, "content": {"multipart/form-data": {
                "schema": _ref("Submission"),
                "encoding": {"meta": {"contentType": "application/json"}, "body": {"contentType": "application/pdf"}}}}},
            errors=("400", "401", "403", "409", "413", "422", "503"), op_id="submit")},
        "/api/v1/outbox": {"get": _op("sent documents (发文箱), newest first", clerk,
                                      {"type": "array", "items": _ref("OutboxItem")},
                                      params=_filters(SENDER_STATUSES, "recipient unit code"), op_id="outbox")},
        "/api/v1/outbox/{doc_id}": {"get": _op(
            "who has signed for a sent document (跟踪), and where the message for each recipient not yet "
            "delivered waits; with recipients=false the document and its counts only",
            clerk, {"oneOf": [_ref("Tracking"), _ref("TrackingSummary")]},
            params=[DOC_ID, {"name": "recipients", "in": "query", "schema": {"enum": ["true", "false"]},
                             "description": "false: no recipient list (a few ms for thousands of recipients)"}],
            errors=doc_errors, op_id="track")},
        "/api/v1/outbox/{doc_id}/recall": {"post": _op(
            "撤回 (recall) from all or the given recipients not yet signed for", clerk, _ref("Tracking"),
            params=[DOC_ID], body=_json_body("UnitsRequest"), errors=(*doc_errors, "413"), op_id="recall")},
        "/api/v1/outbox/{doc_id}/urge": {"post": _op(
            "催办 (urge) all unsigned or the given recipients", clerk, _ref("Tracking"),
            params=[DOC_ID], body=_json_body("UnitsRequest"), errors=(*doc_errors, "413"), op_id="urge")},
        "/api/v1/outbox/{doc_id}/recipients": {"post": _op(
            "补发: send the same sealed package to units the document did not go to (as 抄送); they appear in "
            "the track like the others", clerk, _ref("Tracking"), params=[DOC_ID],
            body=_json_body("AddRecipientsRequest", required=True), errors=(*doc_errors, "413"),
            op_id="addRecipients")},
        "/api/v1/inbox": {"get": _op("received documents (收文箱), newest first", clerk,
                                     {"type": "array", "items": _ref("InboxItem")},
                                     params=_filters(RECEIVER_STATUSES, "sending unit code"), op_id="inbox")},
        "/api/v1/inbox/{doc_id}": {"get": _op(
            "a document with its metadata and verification report", clerk,
            {"oneOf": [_ref("InboxDocument"), _ref("Tracking")]}, params=[DOC_ID], errors=doc_errors, op_id="show")},
        "/api/v1/inbox/{doc_id}/package": {"get": _op(
            "the sealed package (ZIP)", clerk, {}, params=[DOC_ID], errors=doc_errors, op_id="package",
            ok_content={"application/zip": {"schema": {"type": "string", "contentMediaType": "application/zip"}}})},
        "/api/v1/inbox/{doc_id}/forward": {"post": _op(
            "转发: send a received document on, its sealed package unchanged, with a cover 通知 (the submission, "
            "as for /api/v1/documents: its 主送/抄送 are the units forwarded to)", clerk, _ref("ForwardResult"),
            status="201", params=[DOC_ID], body={"required": True, "content": {"multipart/form-data": {
                "schema": _ref("Submission"),
                "encoding": {"meta": {"contentType": "application/json"}, "body": {"contentType": "application/pdf"}}}}},
            errors=("400", "401", "403", "404", "409", "413", "422", "503"), op_id="forward")},
        "/api/v1/inbox/{doc_id}/sign-for": {"post": _op(
            "签收 (sign for) as the token's person", clerk, _ref("InboxItem"), params=[DOC_ID],
            body=_json_body("EmptyRequest"), errors=doc_errors, op_id="signFor")},
        "/api/v1/inbox/{doc_id}/return": {"post": _op(
            "退回 (return) with a reason", clerk, _ref("InboxItem"), params=[DOC_ID],
            body=_json_body("ReturnRequest", required=True), errors=(*doc_errors, "413"), op_id="returnDocument")},
        "/api/v1/inbox/{doc_id}/register": {"post": _op(
            "登记 (register) a signed-for document", clerk, _ref("InboxItem"), params=[DOC_ID],
            body=_json_body("EmptyRequest"), errors=doc_errors, op_id="register")},
        "/api/v1/supervision": {"get": _op(
            "督办: overdue documents escalated to the clerk's unit as supervising unit, newest first", clerk,
            {"type": "array", "items": _ref("SupervisionItem")}, op_id="supervision", params=[
                {"name": "status", "in": "query", "schema": {"enum": ["open", "settled"]}},
                *_filters([], "")[4:]])},
        "/api/v1/node/status": {"get": _op("readiness, queues, peers (with their last refusal) and recent errors",
                                           operator, _ref("NodeStatus"), op_id="nodeStatus")},
    }
    paths.update(_ledger_paths())
    paths.update(_queue_paths(operator))
    for side, what in (("outbox", "a document the clerk's unit sent"), ("inbox", "a document it received")):
        paths[f"/api/v1/{side}/{{doc_id}}/archive"] = {"post": _op(
            f"一键归档 of {what}: the archive package (sealed package, signed envelope headers and receipts, "
            "audit excerpt, GB/T 33480 index, RFC 3161 time-stamp over the manifest); 409 while a recipient is "
            "not settled unless a reason is given", clerk, {}, params=[DOC_ID],
            body=_json_body("ArchiveRequest"), errors=(*doc_errors, "413"), op_id=f"archive{side.title()}",
            ok_content={"application/zip": {"schema": {"type": "string", "contentMediaType": "application/zip"}}})}
    return {
        "openapi": "3.1.0",
        "info": {"title": "gwx node local API", "version": "1",
                 "description": "Clerks' tools, adapters and operators talk to their own node here. "
                                "Errors are {\"error\": {\"code\", \"message\", \"details\"}}."
                                + (f" Node: {node_id}." if node_id else "")},
        "paths": paths,
        "components": {"schemas": {**SCHEMAS, "Meta": meta_schema()},
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "a token from `gwx node add-token`"}}},
    }
