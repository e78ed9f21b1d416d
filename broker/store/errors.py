"""What a store back end raises when stored data refuses an operation; no HTTP in sight.

The service layer turns these into the broker's error tree (``broker.storage``), so the store
never decides a status code and a second back end only has to raise the same classes. Each
error words itself from the kind of record it is about (``entity``: "case", "audit event"),
never from the database's own message, which names tables, columns and triggers.

Tree::

    StoreError
    ├── WriteRefused              the write breaks a rule of the stored data
    │   ├── DuplicateKey          a record with that identifier (or unique value) exists
    │   ├── MissingReference      the record refers to one that does not exist
    │   └── AppendOnly            the record may be added, never changed or deleted
    ├── RecordNotFound            an update or delete named a record that does not exist
    └── SchemaError               the database's schema is not one this broker can use
"""

from __future__ import annotations

from typing import ClassVar


class StoreError(Exception):
    """Base of the store's refusals; ``message`` is fit for a client, ``entity`` for code."""

    def __init__(self, message: str, entity: str = "record") -> None:
        super().__init__(message)
        self.message = message
        self.entity = entity


class WriteRefused(StoreError):
    """A write the stored data does not allow (a check, a required value, a rule)."""

    wording: ClassVar[str] = "the {entity} conflicts with stored data"

    def __init__(self, entity: str) -> None:
        super().__init__(self.wording.format(entity=entity), entity)


class DuplicateKey(WriteRefused):
    wording = "a {entity} with the same identifier already exists"


class MissingReference(WriteRefused):
    wording = "the {entity} refers to a record that does not exist"


class AppendOnly(WriteRefused):
    """Audit events, checkpoints and audit keys: tampering through the store is refused."""

    wording = "stored {entity}s cannot be changed or deleted"


class RecordNotFound(StoreError):
    """An update or delete named a record that is not there (``key`` says which)."""

    def __init__(self, entity: str, key: str, message: str | None = None) -> None:
        super().__init__(message or f"no {entity} {key!r}", entity)
        self.key = key


class SchemaError(StoreError):
    """The database cannot be brought to this broker's schema (e.g. a newer broker made it)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "schema")
