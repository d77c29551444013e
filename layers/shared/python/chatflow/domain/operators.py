"""Who is an operator: the stack's OperatorPhoneNumbers, or a user given the role (chatflow admin)."""

from __future__ import annotations

from chatflow.ports import UserRepository


class OperatorDirectory:
    def __init__(self, users: UserRepository, configured: frozenset[str]) -> None:
        self._users = users
        self._configured = configured

    def is_operator(self, phone_number: str) -> bool:
        if phone_number in self._configured:
            return True
        user = self._users.get(phone_number)
        return user is not None and "operator" in user.roles
