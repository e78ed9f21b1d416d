-- Cases: cancellation with a reason, breaches counted once, the SLA sweep's index, and the
-- customer's answers to "is the problem solved?".

-- Cancellation (a case opened by mistake): who, when, why. Kept if the customer reopens.
ALTER TABLE cases ADD COLUMN cancelled_at TEXT;
ALTER TABLE cases ADD COLUMN cancelled_by TEXT;
ALTER TABLE cases ADD COLUMN cancel_reason TEXT;
-- When the sweeper first saw the SLA breached: each breach is counted exactly once.
ALTER TABLE cases ADD COLUMN breach_recorded_at TEXT;
CREATE INDEX cases_due ON cases (response_due);

CREATE TABLE customer_feedback (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    case_number  TEXT NOT NULL REFERENCES cases (number),
    session_id   TEXT NOT NULL REFERENCES sessions (id),
    at           TEXT NOT NULL,
    solved       INTEGER NOT NULL,
    comment      TEXT NOT NULL
);
CREATE INDEX customer_feedback_case ON customer_feedback (case_number);
