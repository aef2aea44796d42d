"""Bearer tokens (JWT) and roles.

Development: tokens signed with a shared HS256 secret (``CLR_JWT_SECRET``, generated into
``.local/env`` by the run command; never committed), minted with
``python -m clr_events.service.auth --sub alice --role assessor``.

A real identity provider: set ``CLR_JWT_JWKS_URL`` to its JWKS endpoint (keys fetched and
cached by PyJWT, RS256/ES256), plus ``CLR_JWT_ISSUER`` and ``CLR_JWT_AUDIENCE``, and map
its role claim with ``CLR_JWT_ROLES_CLAIM`` (a dotted path, e.g. ``realm_access.roles``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from functools import cached_property
from typing import Any

import jwt
from fastapi import Request
from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from clr_events.service.problems import ProblemError


class Role(StrEnum):
    """The roles write endpoints ask for."""

    REGISTRY_ADMIN = "registry_admin"
    COLLABORATION_ADMIN = "collaboration_admin"
    TRAINING_ADMIN = "training_admin"
    ASSESSOR = "assessor"
    LABELLING_BOARD = "labelling_board"
    AUDITOR = "auditor"


class AuthSettings(BaseSettings):
    """Where keys come from and what a token must say."""

    model_config = SettingsConfigDict(env_prefix="CLR_JWT_")

    secret: SecretStr | None = None
    jwks_url: str | None = None
    issuer: str = "cluster-label-registry-dev"
    audience: str = "cluster-label-registry"
    roles_claim: str = "roles"
    leeway_seconds: int = 30


class Actor(BaseModel):
    """Who sends a command: recorded on every event it causes."""

    subject: str
    roles: frozenset[str]

    def has(self, role: Role) -> bool:
        """Whether the actor holds ``role`` (a registry admin holds every role)."""
        return role.value in self.roles or Role.REGISTRY_ADMIN.value in self.roles


class TokenVerifier:
    """Verifies bearer tokens with the configured keys.

    A token verified once is remembered by its exact text until it expires (``exp``, with
    the leeway): a client sends the same token with every request, and verifying its
    signature and claims again each time was a tenth of a command's CPU. At most
    ``cache_size`` tokens are remembered (the oldest forgotten first); a refused token is
    never remembered, so it is checked (and refused) every time.
    """

    def __init__(
        self,
        settings: AuthSettings,
        *,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._cache_size = cache_size
        self._clock = clock
        self._verified: dict[str, tuple[Actor, float]] = {}

    def verify(self, token: str) -> Actor:
        """The actor a valid token names (remembered until the token expires).

        Raises:
            ProblemError: 401, the token is missing a key, expired, or not ours.
        """
        known = self._verified.get(token)
        if known is not None:
            actor, until = known
            if self._clock() < until:
                return actor
            del self._verified[token]
        actor, expires = self._decode(token)
        if len(self._verified) >= self._cache_size:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (actor, expires + self._settings.leeway_seconds)
        return actor

    @cached_property
    def _jwks(self) -> jwt.PyJWKClient | None:
        return jwt.PyJWKClient(self._settings.jwks_url) if self._settings.jwks_url else None

    def _decode(self, token: str) -> tuple[Actor, float]:
        """The actor a valid token names and when the token expires (epoch seconds).

        Raises:
            ProblemError: 401, the token is missing a key, expired, or not ours.
        """
        settings = self._settings
        try:
            if self._jwks is not None:
                key: Any = self._jwks.get_signing_key_from_jwt(token).key
                algorithms = ["RS256", "ES256", "PS256"]
            elif settings.secret is not None:
                key, algorithms = settings.secret.get_secret_value(), ["HS256"]
            else:
                raise _unauthorised("no token keys are configured (set CLR_JWT_SECRET)")
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_seconds,
                options={"require": ["exp", "sub"]},
            )
        except jwt.PyJWTError as error:
            raise _unauthorised(f"invalid token: {error}") from None
        roles: Any = claims
        for part in settings.roles_claim.split("."):
            roles = roles.get(part, []) if isinstance(roles, dict) else []
        actor = Actor(subject=str(claims["sub"]), roles=frozenset(str(r) for r in roles))
        return actor, float(claims["exp"])


def _unauthorised(detail: str) -> ProblemError:
    return ProblemError(401, "Unauthorised", detail, headers={"WWW-Authenticate": "Bearer"})


def require(*roles: Role) -> Callable[[Request], Awaitable[Actor]]:
    """A dependency: the request's actor, who must hold one of ``roles``."""

    async def dependency(request: Request) -> Actor:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _unauthorised("this endpoint needs a bearer token")
        verifier: TokenVerifier = request.app.state.token_verifier
        actor = verifier.verify(token.strip())
        if not any(actor.has(role) for role in roles):
            raise ProblemError(
                403,
                "Forbidden",
                f"this endpoint needs one of the roles: {', '.join(r.value for r in roles)}",
            )
        return actor

    return dependency


def mint(
    subject: str, roles: list[str], settings: AuthSettings, *, ttl_seconds: int = 12 * 3600
) -> str:
    """A development token signed with the shared secret."""
    if settings.secret is None:
        raise SystemExit("CLR_JWT_SECRET is not set (source .local/env after make run)")
    now = int(time.time())
    claims = {
        "sub": subject,
        settings.roles_claim.split(".")[0]: roles,
        "iss": settings.issuer,
        "aud": settings.audience,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, settings.secret.get_secret_value(), algorithm="HS256")


def main() -> None:
    """Print a development token."""
    parser = argparse.ArgumentParser(description="Mint a development bearer token.")
    parser.add_argument("--sub", required=True, help="the actor, e.g. alice@esca")
    parser.add_argument("--role", action="append", choices=[r.value for r in Role], required=True)
    parser.add_argument("--ttl", type=int, default=12 * 3600, help="seconds (default 12 h)")
    args = parser.parse_args()
    print(mint(args.sub, args.role, AuthSettings(), ttl_seconds=args.ttl))  # noqa: T201


if __name__ == "__main__":
    main()
