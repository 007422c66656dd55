"""Machine-readable alerts: a channel with `format: json` POSTs the alert itself as the JSON body of its webhook.

Built on apprise's json:// plugin (URL syntax, auth, headers, TLS checks, privacy form) with only the body changed:
apprise wraps a message in {"version", "title", "message", "type"}, where a receiver would have to parse the message.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from apprise import NotifyType
from apprise.plugins.custom_json import NotifyJSON

log = logging.getLogger(__name__)

WEBHOOK_SCHEMES = ("json", "jsons")


class AlertWebhook(NotifyJSON):
    """json://user:pass@host/path that sends the prepared JSON document as it is (Content-Type application/json)."""

    service_name = "monitor alert webhook"
    body_maxlen = 1_000_000  # the alert is one document: never cut it to apprise's default message size

    @classmethod
    def from_url(cls, url: str) -> "AlertWebhook | None":
        """The plugin for a json:// or jsons:// URL, or None when apprise cannot parse it."""
        parsed = NotifyJSON.parse_url(url)
        return cls(**parsed) if parsed else None

    def send(self, body: str, title: str = "", notify_type: NotifyType = NotifyType.INFO, attach: Any = None,
             **kwargs: Any) -> bool:
        headers = {"User-Agent": self.app_id, "Content-Type": "application/json", **self.headers}
        url = f"{'https' if self.secure else 'http'}://{self.host}"
        if isinstance(self.port, int):
            url += f":{self.port}"
        url += self.fullpath
        self.throttle()
        try:
            response = requests.request(self.method, url, data=body.encode("utf-8"), params=self.params,
                                        headers=headers, auth=(self.user, self.password) if self.user else None,
                                        verify=self.verify_certificate, timeout=self.request_timeout,
                                        allow_redirects=self.redirects)
        except requests.RequestException as exc:
            self.logger.warning("alert webhook %s: connection error: %s", self.url(privacy=True), type(exc).__name__)
            return False
        if not 200 <= response.status_code < 300:
            self.logger.warning("alert webhook %s: HTTP %d", self.url(privacy=True), response.status_code)
            return False
        return True
