"""Login throttling (django-axes): after LOGIN_FAILURE_LIMIT failures a username, and separately a
client address, is refused for LOGIN_LOCKOUT_MINUTES, on the site's login and the admin's."""

import pytest
from django.conf import settings
from django.test import Client

from tests.web.helpers import PASSWORD

LIMIT = settings.AXES_FAILURE_LIMIT


def attempt(client: Client, username: str, password: str, path: str = "/accounts/login/", **extra):
    return client.post(path, {"username": username, "password": password}, **extra)


def test_a_username_is_locked_out_after_the_limit_even_with_the_right_password(alice):
    client = Client(REMOTE_ADDR="10.0.0.1")
    for _ in range(LIMIT - 1):
        assert attempt(client, "alice", "wrong").status_code == 200  # the form again, with its error
    locked = attempt(client, "alice", "wrong")
    assert locked.status_code == 429 and b"Too many failed logins" in locked.content and b"alice" in locked.content
    # From another address too: the lock is on the username.
    again = attempt(Client(REMOTE_ADDR="10.0.0.2"), "alice", PASSWORD)
    assert again.status_code == 429 and "_auth_user_id" not in again.client.session


def test_a_success_before_the_limit_resets_the_count(alice):
    client = Client(REMOTE_ADDR="10.0.0.3")
    for _ in range(LIMIT - 1):
        attempt(client, "alice", "wrong")
    assert attempt(client, "alice", PASSWORD).status_code == 302
    client.logout()
    for _ in range(LIMIT - 1):
        assert attempt(client, "alice", "wrong").status_code == 200


def test_an_address_guessing_many_usernames_is_locked_out(alice, bob):
    guesser = Client(REMOTE_ADDR="10.0.0.4")
    for i in range(LIMIT):
        attempt(guesser, f"user{i}", "wrong")
    assert attempt(guesser, "bob", PASSWORD).status_code == 429
    # Everyone else logs in as before.
    assert attempt(Client(REMOTE_ADDR="10.0.0.5"), "bob", PASSWORD).status_code == 302


def test_the_admin_login_is_throttled_too(alice):
    client = Client(REMOTE_ADDR="10.0.0.6")
    for _ in range(LIMIT):
        attempt(client, "alice", "wrong", path="/admin/login/")
    assert attempt(client, "alice", PASSWORD, path="/admin/login/").status_code == 429


@pytest.mark.parametrize("behind_proxy", [False, True])
def test_behind_a_proxy_each_client_is_counted_by_the_address_the_proxy_saw(alice, bob, settings, behind_proxy):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if behind_proxy else None
    proxy = "10.0.0.7"  # every request arrives from the proxy's address
    guesser = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="203.0.113.9")
    for i in range(LIMIT):
        attempt(guesser, f"user{i}", "wrong")
    colleague = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="198.51.100.3")
    # Behind a declared proxy the guesser's lock is theirs alone; without one, the connection's
    # address is all there is, and a forwarded header anyone can send is not believed.
    assert attempt(colleague, "bob", PASSWORD).status_code == (302 if behind_proxy else 429)


def test_a_username_longer_than_any_user_s_is_counted_not_a_500(alice):
    """django-axes keeps the username in a 255-character column: PostgreSQL refused a longer one
    (the login answered 500); cut to the longest a username can be, such names share one count."""
    client = Client(REMOTE_ADDR="10.0.0.9")
    for i in range(LIMIT - 1):
        assert attempt(client, "x" * 300 + str(i), "wrong").status_code == 200
    assert attempt(client, "x" * 400, "wrong").status_code == 429, "one count for every name past 150 characters"
    assert attempt(Client(REMOTE_ADDR="10.0.0.10"), "alice", PASSWORD).status_code == 302, "alice is not locked"
