"""Kafka ACLs declared beside the topics (``[[principal]]`` tables of the topics file).

Each principal gets ``writes`` (WRITE on those topics), ``reads`` (READ on those topics),
``tails`` (READ on the topics its relay publishes, whose last records it reads on restart),
``groups`` (READ on those consumer groups) and ``group_prefixes`` (READ on every group
whose name starts so); every name is prefixed with the installation (``CLR_INSTANCE``)
like the topics. Kafka's READ and WRITE include DESCRIBE, and since Kafka 3.0 WRITE on a
topic lets the idempotent producer start, so nothing more is granted.

aiokafka has the CreateAcls and DeleteAcls requests of the Kafka protocol (v1, which knows
prefixed names) but no admin method for them: they are sent here through an aiokafka
client, so the topics job (the Python image, no Java) creates the ACLs with the topics.
Creating an ACL that exists changes nothing, so this is safe to run again. The broker
applies new ACLs a moment after the controller has committed them (a client refused in
that moment: seen here for up to a second), so :func:`ensure_acls` returns once the broker
lists them all.
"""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import SecurityDisabled, for_code
from aiokafka.protocol.admin import (
    CreateAclsRequest_v1,
    DeleteAclsRequest_v1,
    DescribeAclsRequest_v1,
)
from aiokafka.protocol.api import Request

from clr_events.settings import ConnectionSettings


class Resource(IntEnum):
    """Kafka's resource types (the protocol's numbers)."""

    TOPIC = 2
    GROUP = 3


class Pattern(IntEnum):
    """How a resource name matches: exactly, or as the start of names."""

    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    """The operations granted (each includes DESCRIBE)."""

    READ = 3
    WRITE = 4


ALLOW = 3
ANY = 1
ANY_HOST = "*"


@dataclass(frozen=True)
class AclBinding:
    """One allowed operation of a principal on a resource."""

    principal: str
    resource: Resource
    name: str
    operation: Operation
    pattern: Pattern = Pattern.LITERAL

    def as_tuple(self) -> tuple[int, str, int, str, str, int, int]:
        """The binding as the v1 requests' array element."""
        return (
            self.resource,
            self.name,
            self.pattern,
            f"User:{self.principal}",
            ANY_HOST,
            self.operation,
            ALLOW,
        )


def load_acls(path: Path, instance: str = "") -> list[AclBinding]:
    """Read ``[[principal]]`` tables from a TOML file (names prefixed with ``instance.``)."""
    document = tomllib.loads(path.read_text())
    prefix = f"{instance}." if instance else ""
    bindings: list[AclBinding] = []
    for entry in document.get("principal", []):
        user = entry["name"]
        grants: list[tuple[str, Resource, Operation, Pattern]] = [
            ("writes", Resource.TOPIC, Operation.WRITE, Pattern.LITERAL),
            ("reads", Resource.TOPIC, Operation.READ, Pattern.LITERAL),
            ("tails", Resource.TOPIC, Operation.READ, Pattern.LITERAL),
            ("groups", Resource.GROUP, Operation.READ, Pattern.LITERAL),
            ("group_prefixes", Resource.GROUP, Operation.READ, Pattern.PREFIXED),
        ]
        for key, resource, operation, pattern in grants:
            bindings += [
                AclBinding(user, resource, prefix + name, operation, pattern)
                for name in entry.get(key, [])
            ]
    return bindings


class _CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]  # aiokafka is untyped
    API_KEY = 30

    def __init__(self, bindings: list[AclBinding]) -> None:
        self._bindings = bindings

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class([binding.as_tuple() for binding in self._bindings])


class _DeleteAcls(Request[DeleteAclsRequest_v1]):  # type: ignore[misc]  # aiokafka is untyped
    API_KEY = 31

    def __init__(self, bindings: list[AclBinding]) -> None:
        self._bindings = bindings

    def build(self, request_struct_class: type[DeleteAclsRequest_v1]) -> DeleteAclsRequest_v1:
        return request_struct_class([binding.as_tuple() for binding in self._bindings])


class _DescribeAllAcls(Request[DescribeAclsRequest_v1]):  # type: ignore[misc]  # aiokafka is untyped
    API_KEY = 29

    def build(self, request_struct_class: type[DescribeAclsRequest_v1]) -> DescribeAclsRequest_v1:
        return request_struct_class(ANY, None, ANY, None, None, ANY, ANY)


@asynccontextmanager
async def _broker(settings: ConnectionSettings) -> AsyncIterator[AIOKafkaClient]:
    client = AIOKafkaClient(**settings.kafka_options())
    await client.bootstrap()
    try:
        yield client
    finally:
        await client.close()


async def _send(client: AIOKafkaClient, request: Request[Any]) -> Any:
    return await client.send(client.get_random_node(), request)


async def _listed(client: AIOKafkaClient) -> set[tuple[int, str, int, str, str, int, int]]:
    """Every ACL the broker applies, as :meth:`AclBinding.as_tuple` gives them."""
    response = await _send(client, _DescribeAllAcls())
    if response.error_code:
        raise for_code(response.error_code)(response.error_message)
    return {
        (resource_type, name, pattern, *acl)
        for resource_type, name, pattern, acls in response.resources
        for acl in acls
    }


def _raise_errors(results: list[tuple[Any, ...]], bindings: list[AclBinding]) -> None:
    for (error_code, error_message, *_), binding in zip(results, bindings, strict=True):
        if error_code:
            raise for_code(error_code)(f"{binding}: {error_message}")


async def ensure_acls(
    settings: ConnectionSettings, bindings: list[AclBinding], timeout: float = 30.0
) -> bool:
    """Create the ACLs (as a super user) and wait until the broker applies them all; False
    when the broker has no authorizer.

    Raises:
        aiokafka.errors.KafkaError: the broker refused an ACL (say, we are no super user).
        TimeoutError: the broker did not list them all within ``timeout`` seconds.
    """
    if not bindings:
        return True
    async with _broker(settings) as client:
        response = await _send(client, _CreateAcls(bindings))
        try:
            _raise_errors(response.creation_responses, bindings)
        except SecurityDisabled:
            return False
        wanted = {binding.as_tuple() for binding in bindings}
        async with asyncio.timeout(timeout):
            while True:  # polling: the broker offers no notification
                if wanted <= await _listed(client):
                    return True
                await asyncio.sleep(0.05)


async def delete_acls(settings: ConnectionSettings, bindings: list[AclBinding]) -> None:
    """Delete exactly these ACLs (an installation's, when it is removed).

    Raises:
        aiokafka.errors.KafkaError: the broker refused (SecurityDisabled is not an error).
    """
    if not bindings:
        return
    async with _broker(settings) as client:
        response = await _send(client, _DeleteAcls(bindings))
    try:
        _raise_errors(response.filter_responses, bindings)
    except SecurityDisabled:
        return
