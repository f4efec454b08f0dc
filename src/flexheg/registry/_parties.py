"""Supply-chain parties and their public keys."""

from __future__ import annotations

import enum
import json
import logging
from typing import Any

from flexheg.errors import InputError
from flexheg.registry._core import ConflictError, NotFoundError, RegistryCore
from flexheg.registry._entities import check_id
from flexheg.registry._models import Party
from flexheg.wire import PublicKey

logger = logging.getLogger(__name__)


class PartyRole(enum.StrEnum):
    """What a party signs: certificates, custody hand-overs or destruction records."""

    MANUFACTURER = "manufacturer"
    FAB = "fab"
    TESTING_FACILITY = "testing-facility"
    CUSTOMER = "customer"
    DATA_CENTER = "data-center"
    DESTRUCTION_FACILITY = "destruction-facility"


def party_key(party: Party) -> PublicKey:
    return PublicKey.from_dict(json.loads(party.public_key), where=f"key of party {party.name}")


class PartiesMixin(RegistryCore):
    def register_party(
        self, name: str, *, role: str, public_key: PublicKey, actor: str, now: int
    ) -> dict[str, Any]:
        """Register a party's signing key. A party's key is registered once and never replaced."""
        check_id(name, what="party name")
        try:
            party_role = PartyRole(role)
        except ValueError:
            choices = ", ".join(item.value for item in PartyRole)
            raise InputError(f"party role {role!r} is unknown; use one of {choices}") from None
        with self.db.write() as session:
            if session.get(Party, name) is not None:
                raise ConflictError(f"party {name!r} is already registered")
            session.add(
                Party(
                    name=name,
                    role=party_role.value,
                    public_key=json.dumps(public_key.to_dict(), sort_keys=True),
                    keyid=public_key.keyid,
                    at=now,
                )
            )
        logger.info("registered party %s (%s) by %s", name, party_role.value, actor)
        return {"name": name, "role": party_role.value, "keyid": public_key.keyid, "at": now}

    def party(self, name: str) -> dict[str, Any]:
        with self.db.read() as session:
            party = session.get(Party, name)
            if party is None:
                raise NotFoundError(f"party {name!r} is not registered")
            return {
                "name": party.name,
                "role": party.role,
                "keyid": party.keyid,
                "public_key": json.loads(party.public_key),
                "at": party.at,
            }
