"""Schema migrations: an ordered list of SQL statement lists, each applied in one transaction.

``schema_version`` records every applied migration. :func:`migrate` reads the current version
*inside* a ``BEGIN IMMEDIATE`` transaction before applying the next step, so two processes opening
the same fresh database cannot both apply it, and re-opening an up-to-date database changes nothing.
A database migrated by a newer gwx is refused (:class:`StoreSchemaTooNew`) rather than guessed at.

Statements are kept as separate strings rather than one script because ``sqlite3.executescript``
commits any open transaction first, which would break the one-transaction-per-migration rule.
Append new migrations at the end; never edit a shipped one.

Design of the tables (version 1):

- ``queue``: the outbound queue, one logical queue per ``destination`` node. Envelope bytes live in
  the blob store; the row holds the digest. States: incoming → active → sent, or deferred (retry
  later), hold (operator), corrupt (blob missing/altered), bounced (gave up).
- ``peers``: the transport's view of each peer node (up / backing-off / dead) so it survives restarts.
- ``received``: inbound dedupe keyed by message id, with the signed transport receipt we answered
  with, so a duplicate gets the original receipt back; ``state`` tracks post-acknowledgement
  processing (new → done / failed / corrupt) so a restart resumes it.
- ``outbox`` / ``outbox_recipients``: documents this node's units sent, one row per recipient unit.
- ``inbox``: documents received, one row per receiving unit.
- ``audit``: the append-only hash-chained log; triggers refuse UPDATE and DELETE.
- ``blob_refs``: a view of every blob digest a row refers to (what garbage collection keeps).
"""

from __future__ import annotations

from datetime import datetime

from node.store.sql_common import Migration, apply_migrations
from node.store.sqlite.db import Database

_QUEUE_STATES = "'incoming','active','deferred','hold','corrupt','sent','bounced'"

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "queue, peers, received, outbox, inbox, audit", (
        f"""CREATE TABLE queue (
            message_id TEXT PRIMARY KEY,
            destination TEXT NOT NULL,
            blob_digest TEXT NOT NULL,
            size INTEGER NOT NULL CHECK (size >= 0),
            type TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ({_QUEUE_STATES})),
            attempts INTEGER NOT NULL DEFAULT 0,
            first_attempt_at TEXT,
            next_attempt_at TEXT NOT NULL,
            last_error_code TEXT,
            last_error_message TEXT,
            receipt BLOB,
            created_at TEXT NOT NULL,
            expires_at TEXT,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX queue_due ON queue (destination, state, next_attempt_at)",
        "CREATE INDEX queue_state ON queue (state, next_attempt_at)",
        "CREATE INDEX queue_blob ON queue (blob_digest)",
        """CREATE TABLE peers (
            node_id TEXT PRIMARY KEY,
            state TEXT NOT NULL CHECK (state IN ('up','backing-off','dead')),
            since TEXT NOT NULL,
            failures INTEGER NOT NULL DEFAULT 0,
            last_error_code TEXT,
            last_error_message TEXT,
            updated_at TEXT NOT NULL
        )""",
        """CREATE TABLE received (
            message_id TEXT PRIMARY KEY,
            envelope_digest TEXT NOT NULL,
            blob_digest TEXT NOT NULL,
            origin_node TEXT NOT NULL,
            type TEXT,
            size INTEGER,
            received_at TEXT NOT NULL,
            receipt BLOB NOT NULL,
            state TEXT NOT NULL DEFAULT 'new' CHECK (state IN ('new','done','failed','corrupt')),
            error_code TEXT,
            error_message TEXT,
            processed_at TEXT
        )""",
        "CREATE INDEX received_state ON received (state, received_at)",
        "CREATE INDEX received_blob ON received (blob_digest)",
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            doc_id TEXT NOT NULL UNIQUE,
            from_unit TEXT NOT NULL,
            title TEXT NOT NULL,
            kind TEXT NOT NULL,
            doc_number TEXT,
            deadline TEXT,
            created_at TEXT NOT NULL,
            package_digest TEXT NOT NULL
        )""",
        "CREATE INDEX outbox_unit ON outbox (from_unit, id)",
        "CREATE INDEX outbox_blob ON outbox (package_digest)",
        """CREATE TABLE outbox_recipients (
            doc_id TEXT NOT NULL REFERENCES outbox (doc_id),
            unit_code TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('主送','抄送')),
            destination_node TEXT,
            status TEXT NOT NULL,
            status_by TEXT,
            status_at TEXT,
            reason TEXT,
            urge_count INTEGER NOT NULL DEFAULT 0,
            last_urged_at TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (doc_id, unit_code)
        ) WITHOUT ROWID""",
        "CREATE INDEX outbox_recipients_status ON outbox_recipients (status, doc_id)",
        """CREATE TABLE inbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            doc_id TEXT NOT NULL,
            unit_code TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('主送','抄送')),
            from_unit TEXT NOT NULL,
            title TEXT NOT NULL,
            kind TEXT NOT NULL,
            urgency TEXT,
            deadline TEXT,
            status TEXT NOT NULL,
            signed_by TEXT,
            signed_at TEXT,
            return_reason TEXT,
            urge_count INTEGER NOT NULL DEFAULT 0,
            last_urged_at TEXT,
            package_digest TEXT NOT NULL,
            verification TEXT,
            message_id TEXT,
            received_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (doc_id, unit_code)
        )""",
        "CREATE INDEX inbox_unit ON inbox (unit_code, id)",
        "CREATE INDEX inbox_status ON inbox (status, id)",
        "CREATE INDEX inbox_blob ON inbox (package_digest)",
        """CREATE TABLE audit (
            seq INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            subjects TEXT NOT NULL,
            details TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL,
            doc_id TEXT GENERATED ALWAYS AS (json_extract(subjects, '$.doc_id')) VIRTUAL,
            message_id TEXT GENERATED ALWAYS AS (json_extract(subjects, '$.message_id')) VIRTUAL
        )""",
        "CREATE INDEX audit_doc ON audit (doc_id, seq) WHERE doc_id IS NOT NULL",
        "CREATE INDEX audit_message ON audit (message_id, seq) WHERE message_id IS NOT NULL",
        """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
           BEGIN SELECT RAISE(ABORT, 'audit log is append-only: UPDATE refused'); END""",
        """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
           BEGIN SELECT RAISE(ABORT, 'audit log is append-only: DELETE refused'); END""",
        """CREATE VIEW blob_refs (digest) AS
               SELECT blob_digest FROM queue
               UNION ALL SELECT blob_digest FROM received
               UNION ALL SELECT package_digest FROM outbox
               UNION ALL SELECT package_digest FROM inbox""",
    )),
    Migration(2, "envelope drafts, outgoing links, peer credentials, decrypted payloads of received envelopes", (
        # A draft is a message whose envelope cannot be built yet: the destination's encryption
        # certificate is not known (the peer has not been reached). The payload is durable; the
        # destination queue builds the envelope once it has the certificate and swaps the draft
        # for a queue row in one transaction.
        """CREATE TABLE drafts (
            message_id TEXT PRIMARY KEY,
            destination TEXT NOT NULL,
            type TEXT NOT NULL,
            header TEXT NOT NULL,
            payload_digest TEXT NOT NULL,
            payload_size INTEGER NOT NULL CHECK (payload_size >= 0),
            created_at TEXT NOT NULL,
            expires_at TEXT
        )""",
        "CREATE INDEX drafts_destination ON drafts (destination, message_id)",
        # Which document and units each message we sent concerns: receipts, bounces and notices
        # coming back are matched against it (a peer may only speak for the units we sent it).
        """CREATE TABLE outgoing (
            message_id TEXT PRIMARY KEY,
            doc_id TEXT NOT NULL,
            type TEXT NOT NULL,
            destination TEXT NOT NULL,
            units TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX outgoing_doc ON outgoing (doc_id, destination, type)",
        """CREATE TABLE peer_credentials (
            node_id TEXT PRIMARY KEY,
            signing_cert TEXT NOT NULL,
            encryption_cert TEXT NOT NULL,
            chain TEXT NOT NULL,
            fetched_at TEXT NOT NULL
        )""",
        "ALTER TABLE received ADD COLUMN payload_digest TEXT",
        "DROP VIEW blob_refs",
        """CREATE VIEW blob_refs (digest) AS
               SELECT blob_digest FROM queue
               UNION ALL SELECT blob_digest FROM received
               UNION ALL SELECT payload_digest FROM received WHERE payload_digest IS NOT NULL
               UNION ALL SELECT package_digest FROM outbox
               UNION ALL SELECT package_digest FROM inbox
               UNION ALL SELECT payload_digest FROM drafts""",
    )),
    Migration(3, "received envelopes retried after transient failures", (
        # Applying an acknowledged envelope may fail for a while (a stale CRL, the database busy, a
        # notice overtaking its document): it is tried again later, never given up at the first try.
        "ALTER TABLE received ADD COLUMN retry_at TEXT",
        "ALTER TABLE received ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
    )),
    Migration(4, "the duplicate identity of received envelopes", (
        # envelope_digest stays the SHA-256 of the exact bytes received (what the receipt binds);
        # identity_digest is exchange_protocol.replay.envelope_identity, which leaves the hop count
        # out, so a copy forwarded along another route is a duplicate. Rows received before have
        # NULL here: the acceptor takes their identity from the stored envelope when it needs it.
        "ALTER TABLE received ADD COLUMN identity_digest TEXT",
    )),
    Migration(5, "peer backoff persisted", (
        # When a peer that could not be reached may be tried again (node.federation.retry_limiter):
        # a restart must not forget that a peer is backing off. NULL: no backoff.
        "ALTER TABLE peers ADD COLUMN retry_at TEXT",
    )),
    Migration(6, "envelopes relayed for other nodes", (
        # The next hop a relayed envelope was queued for (node.federation.relay); NULL for envelopes
        # addressed to this node. A relayed row is 'done' from the start: nothing here applies it.
        "ALTER TABLE received ADD COLUMN relayed_to TEXT",
    )),
    Migration(7, "a relayed frame's blob is kept while it is queued, not for ever", (
        # A relayed row keeps its identity for duplicate detection; its frame is needed only until
        # the next hop has it (the queue row refers to it meanwhile). Without this every payload a
        # relay ever carried stayed on its disk, once per next hop.
        "DROP VIEW blob_refs",
        """CREATE VIEW blob_refs (digest) AS
               SELECT blob_digest FROM queue
               UNION ALL SELECT blob_digest FROM received WHERE relayed_to IS NULL
               UNION ALL SELECT payload_digest FROM received WHERE payload_digest IS NOT NULL
               UNION ALL SELECT package_digest FROM outbox
               UNION ALL SELECT package_digest FROM inbox
               UNION ALL SELECT payload_digest FROM drafts""",
    )),
    Migration(8, "adapters: a cursor per consumer into the audit log, its outbox rows, webhook subscriptions", (
        # Adapters (SOAP push, watched folders, webhooks) follow the audit log by seq, each consumer
        # with its own cursor (node.store.sqlite.adapter_outbox); every event a consumer wants is a
        # row here before the first attempt to deliver it. UNIQUE (consumer, seq): never twice.
        """CREATE TABLE adapter_cursors (
            consumer TEXT PRIMARY KEY,
            seq INTEGER NOT NULL CHECK (seq >= 0),
            updated_at TEXT NOT NULL
        )""",
        """CREATE TABLE adapter_outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            consumer TEXT NOT NULL,
            seq INTEGER NOT NULL,
            event TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending','done','dead')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            first_failure_at TEXT,
            last_error_code TEXT,
            last_error_message TEXT,
            created_at TEXT NOT NULL,
            finished_at TEXT,
            UNIQUE (consumer, seq)
        )""",
        "CREATE INDEX adapter_outbox_due ON adapter_outbox (consumer, state, seq)",
        "CREATE INDEX adapter_outbox_state ON adapter_outbox (state, consumer)",
        # Which life of this database: adapters' event ids carry it, because a node made again
        # under the same id starts its audit seqs at 1 again and a receiver de-duplicates on ids.
        "CREATE TABLE store_identity (incarnation TEXT NOT NULL)",
        "INSERT INTO store_identity (incarnation) VALUES (lower(hex(randomblob(4))))",
        # A webhook's secret is not stored here: it is a 0600 file beside the database.
        """CREATE TABLE webhooks (
            id TEXT PRIMARY KEY,
            unit TEXT NOT NULL,
            url TEXT NOT NULL,
            types TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
    )),
    Migration(9, "console: users and their sessions", (
        # The clerks' web console (node.console). A password is kept only as its scrypt hash
        # (parameters inside the text, so they can be raised later); units is a JSON list (a clerk's
        # one unit, a supervisor's units, none for an operator).
        """CREATE TABLE console_users (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            login TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('clerk','supervisor','operator')),
            units TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0,
            failed_sign_ins INTEGER NOT NULL DEFAULT 0,
            locked_until TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        # A session is found by the SHA-256 of its id (the cookie's value is never stored).
        """CREATE TABLE console_sessions (
            id_hash TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES console_users (id),
            csrf_token TEXT NOT NULL,
            created_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL,
            expires_at TEXT NOT NULL
        ) WITHOUT ROWID""",
        "CREATE INDEX console_sessions_user ON console_sessions (user_id)",
        "CREATE INDEX console_sessions_expiry ON console_sessions (expires_at)",
    )),
    Migration(10, "督办 marks and items; 转发: documents forwarded and received forwarded", (
        # One mark per inbox row (node.store.sqlite.supervision): noticed overdue once, escalated once
        # (a compare-and-set on escalated_at), settled after. Kept beside the inbox, not in it, so
        # the inbox's shape stays what every other reader knows.
        """CREATE TABLE supervision_marks (
            doc_id TEXT NOT NULL,
            unit TEXT NOT NULL,
            overdue_noted_at TEXT,
            escalated_at TEXT,
            supervisor TEXT,
            working_days_late INTEGER,
            settled_at TEXT,
            no_supervisor_at TEXT,  -- due for escalation while no supervising unit was known (not escalated)
            owed_settlement BLOB,  -- the settlement 督办, encoded, while no route reaches the supervisor
            PRIMARY KEY (doc_id, unit)
        )""",
        # The sweep's question: unsettled rows past their deadline.
        "CREATE INDEX inbox_status_deadline ON inbox (status, deadline)",
        """CREATE TABLE supervision_items (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            doc_id TEXT NOT NULL,
            unit TEXT NOT NULL,
            supervisor TEXT NOT NULL,
            sent_by TEXT NOT NULL,
            title TEXT NOT NULL,
            deadline TEXT NOT NULL,
            escalated_at TEXT NOT NULL,
            working_days_late INTEGER NOT NULL,
            origin_node TEXT NOT NULL,
            received_at TEXT NOT NULL,
            settled_at TEXT,
            settled_by TEXT,
            settled_as TEXT CHECK (settled_as IN ('signed_for','returned','recalled')),
            UNIQUE (doc_id, unit)
        )""",
        "CREATE INDEX supervision_items_supervisor ON supervision_items (supervisor, id)",
        # 转发 (node.documents.forwarding): on the forwarding unit's node, one row per unit a received
        # document was forwarded to with a cover 通知, followed like a recipient row; on the receiving
        # node, which unit forwarded a document to a unit and the message of the cover it came with.
        """CREATE TABLE forwarded (
            doc_id TEXT NOT NULL,
            unit TEXT NOT NULL,
            cover_doc_id TEXT NOT NULL,
            from_unit TEXT NOT NULL,
            destination_node TEXT NOT NULL,
            status TEXT NOT NULL,
            status_by TEXT,
            status_at TEXT,
            reason TEXT,
            created_at TEXT NOT NULL,
            PRIMARY KEY (doc_id, unit)
        )""",
        "CREATE INDEX forwarded_cover ON forwarded (cover_doc_id)",
        """CREATE TABLE forwarded_in (
            doc_id TEXT NOT NULL,
            unit TEXT NOT NULL,
            forwarded_by TEXT NOT NULL,
            cover_message_id TEXT NOT NULL,
            PRIMARY KEY (doc_id, unit)
        )""",
    )),
    Migration(11, "a small payload (a notice) kept in its draft row instead of a blob of its own", (
        # A 签收 wrote its notice of a few hundred bytes as a blob (file and directory fsync) before
        # its transaction; now the bytes commit with the draft, in the same transaction and fsync.
        # payload_digest still names them (SHA-256), so a draft is the same value either way.
        "ALTER TABLE drafts ADD COLUMN payload BLOB",
        "DROP VIEW blob_refs",
        """CREATE VIEW blob_refs (digest) AS
               SELECT blob_digest FROM queue
               UNION ALL SELECT blob_digest FROM received WHERE relayed_to IS NULL
               UNION ALL SELECT payload_digest FROM received WHERE payload_digest IS NOT NULL
               UNION ALL SELECT package_digest FROM outbox
               UNION ALL SELECT package_digest FROM inbox
               UNION ALL SELECT payload_digest FROM drafts WHERE payload IS NULL""",
    )),
    Migration(12, "the 台账: register facts kept with outbox and inbox rows, indexes for the ledgers", (
        # What a ledger shows besides what the rows already held (node.documents.ledger): 发文字号 on
        # the inbox, 紧急程度 on the outbox, 密级, 成文日期 and 发文机关 (a JSON array of unit codes) on
        # both. Rows from before stay NULL: their cells are empty rather than read from each package.
        "ALTER TABLE outbox ADD COLUMN urgency TEXT",
        "ALTER TABLE outbox ADD COLUMN classification TEXT",
        "ALTER TABLE outbox ADD COLUMN written_on TEXT",
        "ALTER TABLE outbox ADD COLUMN issuers TEXT",
        "ALTER TABLE inbox ADD COLUMN doc_number TEXT",
        "ALTER TABLE inbox ADD COLUMN classification TEXT",
        "ALTER TABLE inbox ADD COLUMN written_on TEXT",
        "ALTER TABLE inbox ADD COLUMN issuers TEXT",
        # A ledger is one unit's rows in time order over a date range, paged by (time, id): these
        # index entries end with the rowid (= id), so the range, the order and the keyset are all
        # read from the index (tests/node/documents/test_ledger_statistics.py checks the plans).
        "CREATE INDEX outbox_ledger ON outbox (from_unit, created_at)",
        "CREATE INDEX inbox_ledger ON inbox (unit_code, received_at)",
    )),
    Migration(14, "unit-signed 签收/退回 statements kept on both sides (node.store.evidence)", (
        # side 'receiver': our unit signed it (签收/退回 here); 'sender': it came with a notice about a
        # document we sent or forwarded, verified before the notice applied. The statement is the CMS
        # DER as signed (a few KB: in the row, no blob); sha256 is its digest, once per side.
        """CREATE TABLE notice_evidence (
            id INTEGER PRIMARY KEY,
            doc_id TEXT NOT NULL,
            unit TEXT NOT NULL,
            type TEXT NOT NULL,
            side TEXT NOT NULL CHECK (side IN ('receiver', 'sender')),
            at TEXT NOT NULL,
            statement BLOB NOT NULL,
            sha256 TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            UNIQUE (side, sha256))""",
        "CREATE INDEX notice_evidence_doc ON notice_evidence (doc_id)",
    )),
    Migration(15, "the supervisor's console: 督办 items looked up by the late unit", (
        # A supervisor of units (node.documents.supervised) lists the items about those units,
        # newest first, whichever supervising unit holds them: by (unit, id), not a scan of all items.
        "CREATE INDEX supervision_items_unit ON supervision_items (unit, id)",
    )),
    Migration(16, "indexes for the console's folders and counts of a unit (issue 10, Figures)", (
        # A folder (待签收, 已签收 …) is one unit's rows of one status, newest first: read in this
        # index's order, not through inbox_status's rows of every unit. 超期 is the open folder's
        # rows whose deadline (in the entry) has passed, found without reading a row that is not;
        # the counts on every page (by status, and 超期) are counted from the index alone, without
        # reading the unit's 100,000 rows (bench/console.py: ~100 ms → ~20 ms).
        "CREATE INDEX inbox_folder ON inbox (unit_code, status, id, deadline)",
        # A search (title or 发文字号 containing the text) tries every row of the unit: with the two
        # texts in the index entry only the hits are read from the table (a row carries its ~1.6 KB
        # verification report): 200 → 100 ms for 100,000 documents.
        "CREATE INDEX inbox_search ON inbox (unit_code, id, title, doc_number)",
    )),
    Migration(17, "inbox_unit dropped: inbox_search (unit_code, id, …) serves its reads", (
        # inbox_unit (unit_code, id) is a prefix of inbox_search: every read it served, inbox_search
        # serves in the same order, and each received document updated both (a 通知 to 3,600
        # units is 3,600 rows). Without it, a search is planned on inbox_search unnamed.
        "DROP INDEX IF EXISTS inbox_unit",
    )),
    Migration(18, "audit hash v2 from the next seq; a supervisor's supervising unit; inbox by message, not by status", (
        # v2 hashes an event as H(prev_hash, seq, content_hash) (exchange_protocol.audit_chain), so an
        # archive's excerpt can give other documents' events as content hashes and still be recomputed
        # from its first event to the head. Rows already written keep their v1 hashes: this row says
        # from which seq v2 applies, and nothing may change it afterwards.
        """CREATE TABLE audit_version (
            version INTEGER PRIMARY KEY,
            from_seq INTEGER NOT NULL
        )""",
        "INSERT INTO audit_version (version, from_seq) SELECT 2, COALESCE(MAX(seq), 0) + 1 FROM audit",
        """CREATE TRIGGER audit_version_no_update BEFORE UPDATE ON audit_version
           BEGIN SELECT RAISE(ABORT, 'audit log is append-only: UPDATE refused'); END""",
        """CREATE TRIGGER audit_version_no_delete BEFORE DELETE ON audit_version
           BEGIN SELECT RAISE(ABORT, 'audit log is append-only: DELETE refused'); END""",
        "ALTER TABLE audit ADD COLUMN content_hash TEXT",  # v2 rows: what their link commits to
        # A supervisor account may work for a supervising unit: its scope is then every unit the
        # network directory (else node.toml's parent) names that unit the supervisor of, read at
        # each request (node.supervision.supervisors.supervised_by), beside the units listed by hand.
        "ALTER TABLE console_users ADD COLUMN supervising_unit TEXT",
        # A received message's rows by its id: a 转发's cover looked up as the forward arrives, and a
        # forwarded document's page naming its cover, read every row of the unit for one message
        # (inbox_ledger's unit prefix, then message_id from each row: 100,000 rows for a busy county).
        "CREATE INDEX inbox_message ON inbox (message_id, unit_code)",
        # inbox_status (status, id) served a list of every unit's rows of a status, which nothing
        # asks since the console's lists are per unit (inbox_folder): kept up at each change for nothing.
        "DROP INDEX IF EXISTS inbox_status",
    )),
    Migration(19, "转发 told to the issuer: the forwards of its documents by their recipients", (
        """CREATE TABLE forwarded_on (
            doc_id TEXT NOT NULL, forwarding_unit TEXT NOT NULL, cover_doc_id TEXT NOT NULL,
            units TEXT NOT NULL, forwarded_by TEXT, forwarded_at TEXT NOT NULL, origin_node TEXT NOT NULL,
            PRIMARY KEY (doc_id, forwarding_unit, cover_doc_id)) WITHOUT ROWID""",
    )),
    Migration(20, "small blobs in the database for good: received envelopes' and payloads' bytes", (
        # node.store.sqlite.inline_blobs: a small blob's bytes, committed with the row naming it and
        # never written as a file; deleted when no row of blob_refs names it (a rowid table: SQLite
        # advises WITHOUT ROWID only for rows much smaller than a page).
        """CREATE TABLE inline_blobs (
            digest TEXT NOT NULL PRIMARY KEY,
            size INTEGER NOT NULL CHECK (size >= 0),
            data BLOB NOT NULL)""",
    )),
)

LATEST_VERSION = MIGRATIONS[-1].version


async def current_version(db: Database) -> int:
    row = await db.fetchone(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
    if row is None:
        return 0
    row = await db.fetchone("SELECT COALESCE(MAX(version), 0) FROM schema_version")
    return int(row[0])


async def migrate(db: Database, now: datetime, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Bring the database to the newest schema; returns the versions applied (empty if none).

    The loop (every missing version, one transaction each, a newer database refused) is
    :func:`node.store.sql_common.apply_migrations`, the PostgreSQL backend's too."""
    return await apply_migrations(
        db, now, migrations, where=str(db.path), current_version=lambda: current_version(db),
        prepare=("""CREATE TABLE IF NOT EXISTS schema_version (
            version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)""",))
