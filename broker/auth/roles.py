"""Which staff role may do what: one permission table, one policy object to ask.

Handlers never test roles themselves; they call ``Policy.require(role, action)``, so the whole
access model is the ``DEFAULT_PERMISSIONS`` table below plus the deployment's overrides
(setting ``permissions``, e.g. ``take_control = ["engineering"]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from types import MappingProxyType

from broker.errors import Forbidden
from broker.types import Role


class Action(StrEnum):
    """Things staff do that the policy decides on; values are the names used in settings."""

    CREATE_CASE = "create_case"
    UPDATE_CASE = "update_case"
    CANCEL_CASE = "cancel_case"
    CREATE_SESSION = "create_session"
    VIEW_QUEUE = "view_queue"
    OBSERVE = "observe"
    TAKE_CONTROL = "take_control"
    INVITE = "invite"
    END_SESSION = "end_session"
    READ_AUDIT = "read_audit"
    MANAGE_USERS = "manage_users"


_ACTION_NAMES = frozenset(action.value for action in Action)
_ROLE_NAMES = frozenset(role.value for role in Role)
_SUPPORT = frozenset({Role.DESK, Role.RSE, Role.ENGINEERING})

DEFAULT_PERMISSIONS: Mapping[Action, frozenset[Role]] = MappingProxyType(
    {
        Action.CREATE_CASE: _SUPPORT,
        Action.UPDATE_CASE: _SUPPORT,
        # Whoever may open a case may withdraw one opened by mistake; it is audited with its
        # reason and resolves nothing (broker/sessions/cases.py). Deployments can narrow it.
        Action.CANCEL_CASE: _SUPPORT,
        Action.CREATE_SESSION: _SUPPORT,
        Action.VIEW_QUEUE: _SUPPORT,
        Action.OBSERVE: _SUPPORT,
        # Control of a customer's machine starts at L2; desk (L1) escalates by inviting.
        # Deployments that let L1 drive override this with `take_control`.
        Action.TAKE_CONTROL: frozenset({Role.RSE, Role.ENGINEERING}),
        Action.INVITE: _SUPPORT,
        Action.END_SESSION: _SUPPORT,
        # Security reviews what happened but takes no part in sessions.
        Action.READ_AUDIT: frozenset({Role.SECURITY, Role.ADMIN}),
        # Admin manages accounts but does not observe or control customer screens: least
        # privilege. The account that can create users is the most valuable one to steal;
        # keeping it away from customer screens means a stolen admin login shows no customer
        # data unless the thief also grants itself a support role, which the audit log records.
        Action.MANAGE_USERS: frozenset({Role.ADMIN}),
    }
)


class Policy:
    """An immutable role -> action table; actions missing from it are allowed to nobody."""

    def __init__(self, table: Mapping[Action, frozenset[Role]]) -> None:
        """Wrap a permission table.

        Args:
            table: For each action, the roles allowed to perform it.
        """
        self._table: Mapping[Action, frozenset[Role]] = MappingProxyType(
            {Action(action): frozenset(roles) for action, roles in table.items()}
        )

    @classmethod
    def default(cls) -> Policy:
        """Return the policy of ``DEFAULT_PERMISSIONS``.

        Returns:
            The default policy.
        """
        return cls(DEFAULT_PERMISSIONS)

    @property
    def table(self) -> Mapping[Action, frozenset[Role]]:
        """The read-only permission table."""
        return self._table

    def allows(self, role: Role, action: Action) -> bool:
        """Tell whether a role may perform an action.

        Args:
            role: The staff member's role.
            action: What they are attempting.

        Returns:
            True if the table grants ``action`` to ``role``.
        """
        return role in self._table.get(action, frozenset())

    def require(self, role: Role, action: Action) -> None:
        """Insist that a role may perform an action.

        Args:
            role: The staff member's role.
            action: What they are attempting.

        Raises:
            Forbidden: The table does not grant ``action`` to ``role``; names both.
        """
        if not self.allows(role, action):
            raise Forbidden(
                f"role {role.value} may not {action.value}", role=role.value, action=action.value
            )

    def with_overrides(self, overrides: Mapping[str, Sequence[str]]) -> Policy:
        """Return a policy with some actions' role sets replaced, as read from configuration.

        Each named action gets exactly the listed roles (an empty list allows nobody);
        actions not named keep their current roles.

        Args:
            overrides: Action name -> role names, e.g. ``{"take_control": ["engineering"]}``.

        Returns:
            The new policy; this one is unchanged.

        Raises:
            ValueError: An action or role name is unknown; the message names every bad one.
        """
        problems = [f"unknown action {name!r}" for name in overrides if name not in _ACTION_NAMES]
        # A bare string is a Sequence[str] too: "rse" would otherwise read as roles r, s, e.
        problems += [
            f"roles for {name!r} must be a list"
            for name, roles in overrides.items()
            if isinstance(roles, str)
        ]
        bad_roles = {
            role
            for roles in overrides.values()
            if not isinstance(roles, str)
            for role in roles
            if role not in _ROLE_NAMES
        }
        problems += [f"unknown role {name!r}" for name in sorted(bad_roles)]
        if problems:
            raise ValueError("bad permission overrides: " + ", ".join(problems))
        table = dict(self._table)
        for name, roles in overrides.items():
            table[Action(name)] = frozenset(Role(role) for role in roles)
        return Policy(table)
