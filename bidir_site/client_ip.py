"""The client address that login throttling counts failures against."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The connection's address; behind the proxy that SECURE_PROXY_SSL_HEADER declares, the
    address that proxy saw (the last X-Forwarded-For entry, the one it appended): otherwise
    every client would share the proxy's address, and one guesser would lock everyone out."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if settings.SECURE_PROXY_SSL_HEADER and forwarded:
        return forwarded.split(",")[-1].strip() or None
    return request.META.get("REMOTE_ADDR")
