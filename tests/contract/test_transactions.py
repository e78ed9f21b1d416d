"""Store contract: transactions commit all or nothing, and never interleave."""

from __future__ import annotations

import asyncio

import pytest

from broker.audit.chain import AuditRecord, verify_chain
from broker.store.base import Store
from tests.contract.samples import T0, case, user, with_case


class Boom(Exception):
    pass


async def test_an_exception_rolls_every_write_back(store: Store) -> None:
    with pytest.raises(Boom):
        async with store.transaction():
            await store.insert_case(case("C-1"))
            await store.append_audit(AuditRecord(T0, "rita", "rse", "case.created"))
            await store.put_secret("pepper", b"x")
            raise Boom
    assert await store.get_case("C-1") is None
    assert (await store.audit_head(), await store.get_secret("pepper")) == (None, None)
    # And the store goes on: the next transaction commits.
    await with_case(store, "C-1")
    assert await store.get_case("C-1") == case("C-1")


async def test_a_store_refusal_rolls_back_the_writes_before_it(store: Store) -> None:
    await with_case(store, "C-1")
    with pytest.raises(Exception):  # noqa: B017 - the store's DuplicateKey, tested elsewhere
        async with store.transaction():
            await store.put_secret("pepper", b"x")
            await store.insert_case(case("C-1"))
    assert await store.get_secret("pepper") is None


async def test_a_cancelled_transaction_keeps_nothing(store: Store) -> None:
    inside = asyncio.Event()

    async def writer() -> None:
        async with store.transaction():
            await store.put_secret("pepper", b"x")
            inside.set()
            await asyncio.Event().wait()  # until cancelled

    task = asyncio.create_task(writer())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.get_secret("pepper") is None
    async with store.transaction():
        await store.put_secret("pepper", b"y")
    assert await store.get_secret("pepper") == b"y"


async def test_transactions_do_not_interleave(store: Store) -> None:
    """Each transaction reads, then writes what it read: interleaved, two would read the same
    count and the second insert would clash; serialised, all of them commit."""

    async def add_next_user() -> None:
        async with store.transaction():
            count = await store.count_users()
            await store.get_user(f"u{count}")  # one more await between the read and the write
            await store.add_user(user(f"u{count}"))

    await asyncio.gather(*(add_next_user() for _ in range(12)))
    assert [u.name for u in await store.list_users()] == sorted(f"u{i}" for i in range(12))


async def test_concurrent_appends_keep_one_linear_chain(store: Store) -> None:
    async def append(n: int) -> None:
        async with store.transaction():
            await store.append_audit(AuditRecord(T0, f"actor{n}", "rse", "case.created"))

    await asyncio.gather(*(append(n) for n in range(25)))
    rows = [row async for row in store.audit_rows()]
    assert [row.seq for row in rows] == list(range(1, 26))
    assert verify_chain(rows, await store.audit_head()).ok
    assert {row.actor for row in rows} == {f"actor{n}" for n in range(25)}


async def test_a_transaction_waits_for_the_one_before_to_finish(store: Store) -> None:
    order: list[str] = []
    first_inside = asyncio.Event()

    async def first() -> None:
        async with store.transaction():
            order.append("first in")
            first_inside.set()
            for n in range(5):  # real round trips to the database, each a chance to interleave
                await store.next_counter("c")
                order.append(f"first {n}")
        order.append("first out")

    async def second() -> None:
        await first_inside.wait()
        async with store.transaction():
            order.append("second in")
            assert await store.next_counter("c") == 6  # it sees all of the first one's writes
        order.append("second out")

    await asyncio.gather(first(), second())
    assert order == [
        "first in",
        *(f"first {n}" for n in range(5)),
        "first out",
        "second in",
        "second out",
    ]
