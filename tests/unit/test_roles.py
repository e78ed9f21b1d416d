"""The permission table and the policy that reads it."""

from __future__ import annotations

import pytest

from broker.auth.roles import DEFAULT_PERMISSIONS, Action, Policy
from broker.errors import Forbidden
from broker.types import Role

A = Action
SUPPORT_ACTIONS = {
    A.CREATE_CASE, A.UPDATE_CASE, A.CANCEL_CASE, A.CREATE_SESSION, A.VIEW_QUEUE, A.OBSERVE,
    A.INVITE, A.END_SESSION,
}  # fmt: skip
EXPECTED: dict[Role, set[Action]] = {
    Role.DESK: SUPPORT_ACTIONS,
    Role.RSE: SUPPORT_ACTIONS | {A.TAKE_CONTROL},
    Role.ENGINEERING: SUPPORT_ACTIONS | {A.TAKE_CONTROL},
    Role.SECURITY: {A.READ_AUDIT},
    Role.ADMIN: {A.READ_AUDIT, A.MANAGE_USERS},
}


def test_every_action_is_in_the_table() -> None:
    assert set(DEFAULT_PERMISSIONS) == set(Action)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", list(Action))
def test_default_matrix(role: Role, action: Action) -> None:
    policy = Policy.default()
    assert policy.allows(role, action) is (action in EXPECTED[role])


def test_admin_does_not_watch_or_drive_customer_screens() -> None:
    policy = Policy.default()
    for action in (A.OBSERVE, A.TAKE_CONTROL, A.CREATE_SESSION, A.INVITE):
        assert not policy.allows(Role.ADMIN, action)


def test_require_names_role_and_action() -> None:
    Policy.default().require(Role.RSE, A.TAKE_CONTROL)
    with pytest.raises(Forbidden) as info:
        Policy.default().require(Role.DESK, A.TAKE_CONTROL)
    assert "desk" in info.value.message and "take_control" in info.value.message
    assert info.value.details == {"role": "desk", "action": "take_control"}


def test_overrides_replace_only_the_named_actions() -> None:
    base = Policy.default()
    policy = base.with_overrides({"take_control": ["engineering"], "read_audit": []})
    assert not policy.allows(Role.RSE, A.TAKE_CONTROL)
    assert policy.allows(Role.ENGINEERING, A.TAKE_CONTROL)
    assert not policy.allows(Role.SECURITY, A.READ_AUDIT)
    assert policy.allows(Role.DESK, A.OBSERVE)
    assert base.allows(Role.RSE, A.TAKE_CONTROL)


def test_overrides_can_grant() -> None:
    policy = Policy.default().with_overrides({"take_control": ["desk", "rse", "engineering"]})
    assert policy.allows(Role.DESK, A.TAKE_CONTROL)


def test_bad_overrides_name_every_bad_name() -> None:
    with pytest.raises(ValueError) as info:
        Policy.default().with_overrides(
            {"take_controll": ["rse"], "observe": ["root", "desk", "guest"]}
        )
    message = str(info.value)
    for name in ("take_controll", "root", "guest"):
        assert repr(name) in message
    assert "'desk'" not in message


def test_bare_string_is_not_a_role_list() -> None:
    with pytest.raises(ValueError, match="must be a list"):
        Policy.default().with_overrides({"observe": "rse"})


def test_missing_actions_are_allowed_to_nobody() -> None:
    policy = Policy({A.OBSERVE: frozenset({Role.RSE})})
    assert policy.allows(Role.RSE, A.OBSERVE)
    assert not any(policy.allows(role, A.END_SESSION) for role in Role)
    assert dict(policy.table) == {A.OBSERVE: frozenset({Role.RSE})}
