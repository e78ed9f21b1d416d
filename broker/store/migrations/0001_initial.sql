-- The first schema (SQLite): staff, token keys, cases, sessions, invitations and the audit
-- chain. Timestamps are ISO 8601 UTC strings with microseconds, so they sort as text.
-- IF NOT EXISTS: a file from before numbered migrations may hold some of these already.

CREATE TABLE IF NOT EXISTS users (
    name           TEXT PRIMARY KEY,
    display_name   TEXT NOT NULL,
    role           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    disabled       INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS signing_keys (
    kid          TEXT PRIMARY KEY,
    private_pem  TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    retired_at   TEXT
);

CREATE TABLE IF NOT EXISTS secrets (
    name   TEXT PRIMARY KEY,
    value  BLOB NOT NULL
);

CREATE TABLE IF NOT EXISTS counters (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS cases (
    number                     TEXT PRIMARY KEY,
    customer_name              TEXT NOT NULL,
    company                    TEXT NOT NULL,
    contact                    TEXT NOT NULL,
    product                    TEXT NOT NULL,
    serial_number              TEXT NOT NULL,
    description                TEXT NOT NULL,
    severity                   INTEGER NOT NULL CHECK (severity BETWEEN 1 AND 4),
    plan                       TEXT NOT NULL,
    status                     TEXT NOT NULL,
    created_by                 TEXT NOT NULL,
    created_at                 TEXT NOT NULL,
    updated_at                 TEXT NOT NULL,
    response_due               TEXT NOT NULL,
    first_response_at          TEXT,
    first_response_met         INTEGER,
    last_customer_response_at  TEXT
);
CREATE INDEX IF NOT EXISTS cases_serial ON cases (serial_number);

CREATE TABLE IF NOT EXISTS contact_attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    case_number  TEXT NOT NULL REFERENCES cases (number),
    at           TEXT NOT NULL,
    by_user      TEXT NOT NULL,
    channel      TEXT NOT NULL,
    note         TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS sessions (
    id                TEXT PRIMARY KEY,
    case_number       TEXT NOT NULL REFERENCES cases (number),
    created_by        TEXT NOT NULL,
    engineer_display  TEXT NOT NULL,
    engineer_level    TEXT,
    created_at        TEXT NOT NULL,
    code_hash         TEXT NOT NULL UNIQUE,
    code_expires_at   TEXT NOT NULL,
    code_used_at      TEXT,
    state             TEXT NOT NULL,
    ended_at          TEXT,
    end_reason        TEXT
);
CREATE INDEX IF NOT EXISTS sessions_case ON sessions (case_number);
CREATE INDEX IF NOT EXISTS sessions_state ON sessions (state);

CREATE TABLE IF NOT EXISTS invitations (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id    TEXT NOT NULL REFERENCES sessions (id),
    at            TEXT NOT NULL,
    by_user       TEXT NOT NULL,
    target_user   TEXT,
    target_level  TEXT,
    reason        TEXT NOT NULL
);

-- The audit table has no update or delete path: triggers refuse both.
CREATE TABLE IF NOT EXISTS audit_events (
    seq          INTEGER PRIMARY KEY,
    at           TEXT NOT NULL,
    actor        TEXT NOT NULL,
    actor_role   TEXT NOT NULL,
    client_addr  TEXT,
    action       TEXT NOT NULL,
    case_number  TEXT,
    session_id   TEXT,
    details      TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_case ON audit_events (case_number);
CREATE INDEX IF NOT EXISTS audit_session ON audit_events (session_id);
CREATE INDEX IF NOT EXISTS audit_actor ON audit_events (actor);

-- The latest (seq, hash), so that cutting events off the end of the chain is detected too.
CREATE TABLE IF NOT EXISTS audit_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   INTEGER NOT NULL,
    hash  TEXT NOT NULL
);

CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;

CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
