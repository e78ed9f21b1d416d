"""Store contract: secrets, counters, users and token signing keys."""

from __future__ import annotations

from dataclasses import replace

import pytest

from broker.store.base import Store
from broker.store.errors import DuplicateKey, RecordNotFound
from broker.store.records import SigningKeyRecord
from tests.contract.samples import MADRID_WINTER, T0, at, user


async def test_a_secret_is_stored_once(store: Store) -> None:
    assert await store.get_secret("pepper") is None
    async with store.transaction():
        await store.put_secret("pepper", b"\x00\xffsecret")
    assert await store.get_secret("pepper") == b"\x00\xffsecret"
    with pytest.raises(DuplicateKey) as refused:
        async with store.transaction():
            await store.put_secret("pepper", b"other")
    assert refused.value.entity == "secret"
    assert refused.value.message == "a secret with the same identifier already exists"
    assert await store.get_secret("pepper") == b"\x00\xffsecret"


async def test_writes_outside_a_transaction_are_refused(store: Store) -> None:
    with pytest.raises(RuntimeError):
        await store.put_secret("pepper", b"x")
    assert await store.get_secret("pepper") is None


async def test_counters_count_per_name(store: Store) -> None:
    async with store.transaction():
        numbers = [await store.next_counter("case") for _ in range(3)]
        other = await store.next_counter("other")
    async with store.transaction():
        numbers.append(await store.next_counter("case"))
    assert (numbers, other) == ([1, 2, 3, 4], 1)


async def test_users_round_trip_in_name_order(store: Store) -> None:
    assert (await store.list_users(), await store.count_users()) == ([], 0)
    bob = user("bob", role="admin", created_at=at(1).astimezone(MADRID_WINTER))
    ana = user("ana", disabled=True)
    async with store.transaction():
        await store.add_user(bob)
        await store.add_user(ana)
    assert await store.get_user("bob") == bob
    assert await store.get_user("nobody") is None
    assert await store.list_users() == [ana, bob]
    assert await store.count_users() == 2


async def test_a_user_name_is_taken_once(store: Store) -> None:
    async with store.transaction():
        await store.add_user(user("ana"))
    with pytest.raises(DuplicateKey) as refused:
        async with store.transaction():
            await store.add_user(user("ana", display_name="Other Ana"))
    assert refused.value.entity == "user"
    assert (await store.get_user("ana")) == user("ana")


async def test_disabling_and_enabling_users(store: Store) -> None:
    async with store.transaction():
        for name in ("ana", "bob", "eve"):
            await store.add_user(user(name))
        await store.set_user_disabled("bob", True)
    asked = {"ana", "bob", "ghost"} | {f"nobody{i}" for i in range(2000)}
    assert await store.enabled_user_names(asked) == {"ana"}
    assert await store.enabled_user_names([]) == frozenset()
    async with store.transaction():
        await store.set_user_disabled("bob", False)
    assert await store.enabled_user_names(["bob", "eve"]) == {"bob", "eve"}
    with pytest.raises(RecordNotFound) as missing:
        async with store.transaction():
            await store.set_user_disabled("ghost", True)
    assert (missing.value.entity, missing.value.key) == ("user", "ghost")
    assert missing.value.message == "no user named 'ghost'"


async def test_a_password_hash_is_replaced(store: Store) -> None:
    async with store.transaction():
        await store.add_user(user("ana"))
        await store.set_password_hash("ana", "$argon2id$new")
    assert await store.get_user("ana") == user("ana", password_hash="$argon2id$new")


async def test_signing_keys_oldest_first_retired_once(store: Store) -> None:
    old = SigningKeyRecord("k-old", "PEM old", T0, None)
    new = SigningKeyRecord("k-new", "PEM new", at(5), at(99))  # stored as not retired
    async with store.transaction():
        await store.add_signing_key(new)
        await store.add_signing_key(old)
    assert await store.list_signing_keys() == [old, replace(new, retired_at=None)]
    assert await store.signing_key_ids() == {"k-old", "k-new"}
    async with store.transaction():
        await store.retire_signing_key("k-old", at(10))
        await store.retire_signing_key("k-old", at(20))  # retired already: keeps its time
    assert (await store.list_signing_keys())[0] == replace(old, retired_at=at(10))
    with pytest.raises(DuplicateKey):
        async with store.transaction():
            await store.add_signing_key(old)


async def test_a_revoked_signing_key_is_gone(store: Store) -> None:
    async with store.transaction():
        await store.add_signing_key(SigningKeyRecord("k1", "PEM", T0, None))
        await store.delete_signing_key("k1")
    assert (await store.list_signing_keys(), await store.signing_key_ids()) == ([], frozenset())
    with pytest.raises(RecordNotFound) as missing:
        async with store.transaction():
            await store.delete_signing_key("k1")
    assert missing.value.message == "no signing key 'k1'"
