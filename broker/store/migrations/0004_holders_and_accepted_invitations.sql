-- Sessions name who has them in hand; invitations record who accepted them.

-- The creator at first; hand-overs move it; NULL while nobody does. The customer's status
-- check names this engineer, never one who left.
ALTER TABLE sessions ADD COLUMN holder_user TEXT;
ALTER TABLE sessions ADD COLUMN holder_display TEXT;
ALTER TABLE sessions ADD COLUMN holder_level TEXT;
-- Before hand-overs were recorded, the session's engineer was always its creator.
UPDATE sessions SET holder_user = created_by, holder_display = engineer_display,
    holder_level = engineer_level;

-- Set when an invitee (the user, or anyone of the level) joins the session.
ALTER TABLE invitations ADD COLUMN accepted_at TEXT;
ALTER TABLE invitations ADD COLUMN accepted_by TEXT;
CREATE INDEX invitations_session ON invitations (session_id);
