-- Signed checkpoints of the audit chain's head, and the Ed25519 keys that sign them.

-- Apart from the token keys. Rotation drops the private half (a retired key only verifies);
-- the public half is kept for good, so every checkpoint and exported anchor stays verifiable.
CREATE TABLE audit_keys (
    kid          TEXT PRIMARY KEY,
    public_key   TEXT NOT NULL,
    private_pem  TEXT,
    created_at   TEXT NOT NULL,
    retired_at   TEXT,
    CHECK ((retired_at IS NULL) = (private_pem IS NOT NULL))
);

-- Signed (seq, hash) of the chain, so cutting the tail is seen even with audit_head rewritten.
CREATE TABLE audit_checkpoints (
    seq        INTEGER PRIMARY KEY,
    hash       TEXT NOT NULL,
    at         TEXT NOT NULL,
    kid        TEXT NOT NULL REFERENCES audit_keys (kid),
    signature  TEXT NOT NULL
);

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;

CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;

CREATE TRIGGER audit_keys_no_delete BEFORE DELETE ON audit_keys
BEGIN
    SELECT RAISE(ABORT, 'audit keys are kept to verify old checkpoints');
END;
