"""API principals and their bearer tokens.

A token is 32 random bytes (URL-safe base64). Only its SHA-256 digest is stored: the token has
full entropy, so a slow password hash would add nothing, and a digest lookup is one indexed query.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from flexheg.errors import InputError
from flexheg.registry._census import CensusMixin
from flexheg.registry._core import ConflictError, NotFoundError
from flexheg.registry._entities import check_id
from flexheg.registry._models import Principal, Role

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuthenticatedPrincipal:
    name: str
    role: Role


def token_digest(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


class PrincipalsMixin(CensusMixin):
    def issue_token(self, name: str, *, role: str, actor: str, now: int, replace: bool = False) -> str:
        """Create a principal (or, with ``replace``, give it a new token) and return its token.

        The token is shown once; the registry keeps only its digest. For the owner role the
        principal's name is the owner name that entities carry.
        """
        check_id(name, what="principal name")
        try:
            principal_role = Role(role)
        except ValueError:
            choices = ", ".join(item.value for item in Role)
            raise InputError(f"role {role!r} is unknown; use one of {choices}") from None
        token = secrets.token_urlsafe(32)
        with self.db.write() as session:
            principal = session.get(Principal, name, with_for_update=True)
            if principal is not None and not replace:
                raise ConflictError(f"principal {name!r} already exists; pass replace to issue a new token")
            if principal is None:
                session.add(Principal(name=name, role=principal_role.value,
                                      token_digest=token_digest(token), revoked=False, at=now))
            else:
                principal.role = principal_role.value
                principal.token_digest = token_digest(token)
                principal.revoked = False
                principal.at = now
        logger.info("token issued for principal %s (%s) by %s", name, principal_role.value, actor)
        return token

    def revoke_token(self, name: str, *, actor: str) -> None:
        with self.db.write() as session:
            principal = session.get(Principal, name, with_for_update=True)
            if principal is None:
                raise NotFoundError(f"principal {name!r} does not exist")
            principal.revoked = True
        logger.info("token of principal %s revoked by %s", name, actor)

    def authenticate(self, token: str) -> AuthenticatedPrincipal | None:
        """Return the principal that holds ``token``, or None for an unknown or revoked token."""
        digest = token_digest(token)
        with self.db.read() as session:
            principal = session.scalars(select(Principal).where(Principal.token_digest == digest)).first()
            if principal is None or principal.revoked:
                return None
            # The lookup is by digest; comparing again in constant time costs nothing.
            if not hmac.compare_digest(principal.token_digest, digest):
                return None
            return AuthenticatedPrincipal(principal.name, Role(principal.role))

    def principals(self) -> list[dict[str, Any]]:
        with self.db.read() as session:
            rows = session.scalars(select(Principal).order_by(Principal.name))
            return [{"name": p.name, "role": p.role, "revoked": p.revoked, "at": p.at} for p in rows]
