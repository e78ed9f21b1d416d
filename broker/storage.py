"""The service layer's side of the store seam: transactions whose refusals are BrokerErrors.

The store raises ``broker.store.errors`` and knows nothing of HTTP; the services open every
transaction through ``transaction(store)``, which turns those into the broker's error tree with
the store's wording (a duplicate case number is a 409 that says so, an unknown user a 404).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from broker.errors import BrokerError, Conflict, NotFound
from broker.store.base import Store
from broker.store.errors import RecordNotFound, StoreError


def broker_error(exc: StoreError) -> BrokerError:
    """The client-facing error for a store refusal: 404 for a missing record, else 409."""
    if isinstance(exc, RecordNotFound):
        return NotFound(exc.message)
    return Conflict(exc.message)


@asynccontextmanager
async def transaction(store: Store) -> AsyncIterator[None]:
    """``store.transaction()``, with a store refusal raised as its ``BrokerError``.

    Outside the store's own context, so a refusal at commit is translated too; the
    transaction has rolled back by the time the caller sees the error.
    """
    try:
        async with store.transaction():
            yield
    except StoreError as exc:
        raise broker_error(exc) from exc
