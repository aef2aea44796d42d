"""What an endpoint's answer means, when to try again, when to give up, whom to call.

Pure: no I/O. The delivery loop (:mod:`.delivery`) asks these questions.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum
from urllib.parse import urlsplit


class Verdict(StrEnum):
    """An attempt's outcome."""

    DELIVERED = "delivered"
    RETRY = "retry"
    GONE = "gone"
    """410 Gone: the receiver wants no more (the specification: disable the endpoint)."""


def verdict(status: int) -> Verdict:
    """A 2xx is delivered, 410 is gone, anything else (3xx included: redirects are not
    followed) is tried again."""
    if 200 <= status <= 299:
        return Verdict.DELIVERED
    if status == 410:
        return Verdict.GONE
    return Verdict.RETRY


def retry_after(status: int, value: str | None, now: float) -> float | None:
    """Seconds a 429 or 503 asks us to wait (``Retry-After`` as seconds or an HTTP date),
    or None."""
    if status not in (429, 503) or not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, OverflowError):
        return None


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; dead once an event has failed for
    ``dead_after_seconds`` and ``dead_after_attempts`` times in a row."""

    first_seconds: float = 1.0
    max_seconds: float = 3600.0
    dead_after_seconds: float = 3 * 24 * 3600.0
    dead_after_attempts: int = 20

    def delay(self, failures: int, asked: float | None = None) -> float:
        """Seconds before attempt ``failures + 1`` (``failures`` >= 1 so far): doubling from
        ``first_seconds`` up to ``max_seconds``, 50-100 % of it (jitter, so endpoints
        that failed together are not tried in step); a ``Retry-After`` the endpoint sent
        is honoured up to ``max_seconds``."""
        if asked is not None:
            return min(max(asked, self.first_seconds), self.max_seconds)
        base = min(self.first_seconds * 2 ** min(failures - 1, 62), self.max_seconds)
        return float(base * random.uniform(0.5, 1.0))

    def dead(self, failures: int, failing_for: float) -> bool:
        """Whether to give up on the endpoint (it becomes ``dead`` until re-enabled)."""
        return failures >= self.dead_after_attempts and failing_for >= self.dead_after_seconds


def address_allowed(address: str, *, allow_private: bool) -> bool:
    """Whether a resolved address may be called: only public (global unicast) ones, unless
    private targets are allowed (development)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if allow_private:
        return not ip.is_multicast and not ip.is_unspecified
    return ip.is_global and not ip.is_multicast


def target_refusal(url: str, *, allow_private: bool) -> str | None:
    """Why ``url`` may not be registered (None: it may, subject to what its name resolves
    to): https only, no credentials in it, and no private or link-local address (SSRF),
    unless private targets are allowed, when http is accepted too."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as error:
        return f"not a URL: {error}"
    scheme = parts.scheme.lower()
    if scheme != "https" and not (allow_private and scheme == "http"):
        return "an endpoint must be https" + ("" if allow_private else " (http: development only)")
    if not host:
        return "an endpoint URL needs a host"
    if parts.username is not None or parts.password is not None:
        return "no credentials in the URL: verify our signature instead"
    if parts.fragment:
        return "no fragment in an endpoint URL"
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and not address_allowed(str(literal), allow_private=allow_private):
        return f"{host} is not a public address"
    if not allow_private and (host == "localhost" or host.endswith((".localhost", ".local"))):
        return f"{host} is not a public host"
    return None
