"""What zdactivity survives: a broken or hostile server, a wrong clock, a careless caller.

Each test is one case, named for what the client does about it, against a real server on
loopback (``hostile.HostileServer``, or the emulator where it can produce the fault). Read the
test names top to bottom as the list of what the long-running paths are proven to survive.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import yarl
from hostile import HostileServer, activity, page, respond
from hypothesis import given, settings
from hypothesis import strategies as st

import zdactivity
from zdactivity.protocol import resolve_base_url


async def test_the_hostile_server_serves_a_page() -> None:
    async with HostileServer(respond(page([activity(1)]))) as server, server.client() as zd:
        listed = await zd.activities.list().collect()
    assert [a.id for a in listed] == [1]
    assert server.paths == ["/api/v2/activities?page%5Bsize%5D=100"]


# === Data loss: watch, tail and resumption ====================================================


# (end of data loss)


# === Hangs and account-wide stalls: rate limits, Retry-After, timeouts ========================


# (end of hangs)


# === Failures that are final, or escape the error tree ========================================


# (end of failures)


# === The command line =========================================================================


# (end of command line)


# === Security: credentials, hosts and shared caches ===========================================


@pytest.mark.parametrize("subdomain", ["acme\u017f", "acme\u0131", "\u0130stanbul", "\u212aelvin"])
def test_a_non_ascii_subdomain_is_refused_not_folded_onto_another_account(
    subdomain: str,
) -> None:
    with pytest.raises(ValueError, match="DNS label"):
        zdactivity.Client(subdomain=subdomain, auth=zdactivity.OAuthToken("s3cret-token"))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=70))
def test_any_accepted_subdomain_is_an_ascii_label_and_the_host_is_exactly_it(
    subdomain: str,
) -> None:
    try:
        url = resolve_base_url(subdomain=subdomain)
    except ValueError:
        return
    assert subdomain.isascii()
    assert re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?", subdomain)
    assert urlsplit(url).hostname == f"{subdomain.lower()}.zendesk.com"
    assert yarl.URL(url).host == f"{subdomain.lower()}.zendesk.com"


@pytest.mark.parametrize(
    "base_url",
    [
        "https://acme.zendesk.com\n.evil.com",
        "https://acme.zendesk.com\r.evil.com",
        "https://acme.zendesk.com\t.evil.com",
        "https://acme.zendesk.com\x00.evil.com",
        "https://acme .zendesk.com",
        "https://acme.zendesk.com\x7f",
        "https://acme\u017f.zendesk.com",
    ],
)
def test_a_base_url_with_whitespace_control_or_non_ascii_characters_is_refused(
    base_url: str,
) -> None:
    with pytest.raises(ValueError, match=r"whitespace or control|ASCII"):
        resolve_base_url(base_url=base_url)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=12), st.text(max_size=12))
def test_any_accepted_base_url_names_exactly_the_host_that_was_written(
    middle: str, tail: str
) -> None:
    written = f"https://acme{middle}.zendesk.com{tail}"
    try:
        url = resolve_base_url(base_url=written)
    except ValueError:
        return
    assert url.isascii() and url.isprintable() and " " not in url
    host = urlsplit(url).hostname
    assert host is not None and host in written.lower()
    assert yarl.URL(url).host == host


# (end of security)
