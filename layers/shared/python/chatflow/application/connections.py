"""WebSocket ``$connect`` and ``$disconnect``: the caller's connections recorded and forgotten.

``$connect`` runs after the shared Lambda authorizer accepted ``?token=`` (a bad token
never gets here); its context names the caller. Presence frames follow from the
connections table's stream (the fan-out), so connecting stays one write.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from chatflow.domain.realtime import CONNECTION_TTL
from chatflow.observability import logger
from chatflow.ports import ConnectionRepository


class ConnectionService:
    def __init__(self, *, connections: ConnectionRepository, clock: Callable[[], datetime]) -> None:
        self._connections = connections
        self._clock = clock

    def connect(self, phone_number: str, connection_id: str) -> None:
        now = self._clock()
        self._connections.add(phone_number, connection_id, now=now, expires_at=now + CONNECTION_TTL)
        logger.debug("connected", extra={"connection_id": connection_id})

    def disconnect(self, connection_id: str) -> str | None:
        """Forget the connection; its owner, or None when it was already forgotten."""
        owner = self._connections.remove(connection_id, now=self._clock())
        logger.debug("disconnected", extra={"connection_id": connection_id, "known": owner is not None})
        return owner

    def on_route(self, route: str, connection_id: str, caller: str | None) -> int:
        """``$disconnect``, or ``$connect`` by ``caller`` (the authorizer's): the status code."""
        if route == "$disconnect":
            self.disconnect(connection_id)
            return 200
        if not caller:
            logger.warning("connect without an authorized caller", extra={"connection_id": connection_id})
            return 401
        self.connect(caller, connection_id)
        return 200
