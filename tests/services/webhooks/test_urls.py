"""Which webhook URLs are accepted: http(s) only; loopback/private refused unless allowed."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from services.webhooks.urls import is_public_address, validate_webhook_url
from tallyflow.core.errors import InvalidInput

NAMES = {
    "hooks.example.com": ["93.184.215.14"],
    "internal.corp": ["10.1.2.3"],
    "mixed.example": ["93.184.215.14", "192.168.1.10"],
}


def fake_resolve(host: str) -> Iterable[str]:
    """A fixed DNS (tests never depend on the network)."""
    return NAMES.get(host, [])


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/tallyflow",
        "http://hooks.example.com:8080/x?y=1",
        "https://93.184.215.14/hook",
        # a name that does not resolve now is accepted; each delivery checks it again
        "https://not-yet.example/hook",
    ],
)
def test_public_urls_are_accepted(url: str) -> None:
    assert validate_webhook_url(url, allow_private=False, resolve=fake_resolve) == url


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://hooks.example.com/x", "invalid_url"),
        ("file:///etc/passwd", "invalid_url"),
        ("javascript:alert(1)", "invalid_url"),
        ("https://", "invalid_url"),
        ("https://user:pw@hooks.example.com/", "invalid_url"),
        ("https://hooks.example.com:99999/", "invalid_url"),
        ("http://localhost:8000/hook", "private_url"),
        ("http://api.localhost/hook", "private_url"),
        ("http://127.0.0.1/hook", "private_url"),
        ("http://[::1]/hook", "private_url"),
        ("http://[::ffff:127.0.0.1]/hook", "private_url"),
        ("http://10.0.0.5/hook", "private_url"),
        ("http://172.16.0.1/hook", "private_url"),
        ("http://192.168.0.1/hook", "private_url"),
        ("http://169.254.169.254/latest/meta-data", "private_url"),  # cloud metadata
        ("http://100.64.0.1/hook", "private_url"),  # carrier-grade NAT
        ("http://0.0.0.0/hook", "private_url"),
        ("http://[fd00::1]/hook", "private_url"),
        ("https://internal.corp/hook", "private_url"),  # a name resolving to a private address
        ("https://mixed.example/hook", "private_url"),  # any private address is enough
    ],
)
def test_bad_and_private_urls_are_refused(url: str, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_webhook_url(url, allow_private=False, resolve=fake_resolve)
    assert caught.value.code == code
    assert caught.value.message.startswith("url:")


def test_private_urls_are_accepted_when_allowed() -> None:
    for url in ("http://127.0.0.1:9000/hook", "https://internal.corp/hook"):
        assert validate_webhook_url(url, allow_private=True, resolve=fake_resolve) == url
    with pytest.raises(InvalidInput):  # but never another scheme
        validate_webhook_url("ftp://127.0.0.1/", allow_private=True, resolve=fake_resolve)


def test_public_address_rule() -> None:
    assert is_public_address("8.8.8.8")
    assert not is_public_address("224.0.0.1")  # multicast
    assert not is_public_address("::ffff:10.0.0.1")
