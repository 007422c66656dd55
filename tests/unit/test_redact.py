"""One redactor: whatever the five patterns it replaced masked, each of its functions masks.

The OLD_* patterns are copies of the ones monitor had before monitor/redact.py (net._SECRET_QUERY, logs._USERINFO
and logs._SECRET_PARAMS, alerts/deliver._SECRET_ARG, store.redact_redis_url): they define "what was caught".
"""

from __future__ import annotations

import re

import pytest

from monitor.redact import mask_text, privacy_url, redact_redis_url, redact_url, secret_parts

OLD_NET_QUERY = re.compile(r"(?i)([?&](?:[^=&]*(?:key|token|secret|password|passwd|auth|sig|signature)[^=&]*)=)[^&#]*")
OLD_LOGS_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^\s/:@]*):(?P<secret>[^\s/@]+)@")
OLD_LOGS_PARAMS = re.compile(r"(?i)(?P<key>[?&](?:token|key|apikey|api_key|pass|password|secret|auth)=)[^&\s]+")
OLD_APPRISE_ARG = re.compile(r"^[+\-:]|key|token|secret|pass|sig|cred|authori", re.I)

CANARY = "CANARYv4lue9f3e"
NAMES = ["token", "key", "apikey", "api_key", "API_KEY", "X-Api-Key", "pass", "password", "passwd", "secret",
         "client_secret", "auth", "Authorization", "sig", "signature", "X-Amz-Signature", "cred", "credentials",
         "access_token", "hub.verify_token", "AWSAccessKeyId", "sessionauth", "monkey"]
PLAIN = ["q", "page", "format", "to", "smtp", "id", "utm_source", "lang"]


def old_caught(name: str) -> bool:
    """Whether any of the old patterns masked the value of a parameter of this name."""
    url = f"https://news.example/rss?x=1&{name}={CANARY}&y=2"
    return (CANARY not in OLD_NET_QUERY.sub(r"\1***", url)
            or CANARY not in OLD_LOGS_PARAMS.sub(lambda m: f"{m['key']}****", url)
            or bool(OLD_APPRISE_ARG.search(name)))


def test_the_samples_cover_every_old_pattern():
    assert {n for n in NAMES if old_caught(n)} == set(NAMES)  # every sample name was caught by one of them at least
    assert not any(old_caught(n) for n in PLAIN)
    # and no one of them caught them all: each redactor now masks what only another one did
    missed = {"net": [n for n in NAMES if CANARY in OLD_NET_QUERY.sub("", f"?{n}={CANARY}")],
              "logs": [n for n in NAMES if CANARY in OLD_LOGS_PARAMS.sub("", f"?{n}={CANARY}")],
              "apprise": [n for n in NAMES if not OLD_APPRISE_ARG.search(n)]}
    assert all(missed.values()), missed


@pytest.mark.parametrize("name", NAMES)
def test_a_secret_parameter_caught_by_any_old_pattern_is_caught_by_every_redactor(name):
    query = f"x=1&{name}={CANARY}&y=2"
    shown = {
        "redact_url": redact_url(f"https://news.example/rss?{query}"),
        "mask_text": mask_text(f"GET https://news.example/rss?{query} failed: HTTP 500"),
        "redact_redis_url": redact_redis_url(f"rediss://cache.example:6380/0?{query}"),
        "privacy_url": privacy_url(f"json://hooks.example/monitor?{query}"),
    }
    for function, text in shown.items():
        assert CANARY not in text, (function, text)
        assert "x=1" in text and "y=2" in text, (function, text)  # the other parameters stay readable


@pytest.mark.parametrize("name", PLAIN)
def test_plain_parameters_stay_readable(name):
    assert f"{name}=value1" in redact_url(f"https://news.example/rss?{name}=value1")
    assert f"{name}=value1" in mask_text(f"see https://news.example/rss?{name}=value1 now")
    assert f"{name}=value1" in privacy_url(f"json://hooks.example/x?{name}=value1")


@pytest.mark.parametrize("arg", ["%2BX-Custom", "+X-Custom", "-getparam", ":payload_field"])
def test_apprise_pass_through_arguments_are_masked_in_the_privacy_form(arg):
    """+Header=, -GETparam=, :payload_field= as apprise passes them on; a raw + (read as a space) too."""
    shown = privacy_url(f"json://hooks.example/x?{arg}={CANARY}&format=json")
    assert CANARY not in shown and "format=json" in shown
    assert CANARY in secret_parts(f"json://hooks.example/x?{arg}={CANARY}", shown)


@pytest.mark.parametrize("url", ["https://bob:" + CANARY + "@news.example/rss",
                                 "redis://:" + CANARY + "@cache.example:6379/0",
                                 "rediss://monitor:" + CANARY + "@cache.example:6380/1",
                                 "smtp://alerts:" + CANARY + "@mail.example"])
def test_passwords_in_urls_are_caught_everywhere_they_were(url):
    assert CANARY not in OLD_LOGS_USERINFO.sub(r"\g<scheme>\g<user>:****@", url)  # what logs caught
    assert CANARY not in redact_url(url)
    assert CANARY not in redact_redis_url(url)
    assert CANARY not in mask_text(f"cannot connect to {url}: refused")
    user = url.split("://", 1)[1].split(":", 1)[0]
    assert f"{user}:***@" in redact_url(url) or not user  # the user stays, for the operator


def test_a_redis_password_with_slash_and_at_is_masked_whole():
    """store.redact_redis_url's case: everything before the last @ but the user (a raw password may hold / and @)."""
    url = "redis://monitor:p/4ss@w" + CANARY + "@cache.example:6379/0"
    assert redact_redis_url(url) == "redis://monitor:****@cache.example:6379/0"


def test_feed_urls_keep_the_form_monitor_feeds_shows():
    assert redact_url("https://bob:hunter2@a.example.org/rss?api_key=k3y&x=1") == \
        "https://bob:***@a.example.org/rss?api_key=***&x=1"
    assert redact_url("http://[::1") == "<invalid URL>"
