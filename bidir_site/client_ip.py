"""Whom login throttling (django-axes) counts failures against: the client address, and the
username tried."""

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


def client_username(request: HttpRequest, credentials: dict | None = None) -> str | None:
    """The username tried, cut to the longest a user's can be: django-axes stores it in a
    255-character column, and a longer one failed the login with a 500 on PostgreSQL (SQLite
    does not check lengths). Every longer name is no one's, so counting them together loses
    nothing."""
    from django.contrib.auth import get_user_model

    data = credentials if credentials is not None else getattr(request, "data", request.POST)
    username = data.get(get_user_model().USERNAME_FIELD)
    longest = get_user_model()._meta.get_field(get_user_model().USERNAME_FIELD).max_length
    return username[:longest] if isinstance(username, str) else username
