"""Alerts: settings and channels, rendering, the outbox (once per rule and story), delivery, history.

Names are imported lazily, so reading the configuration (channels.py) does not load apprise. See docs/alerts.md.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "AlertSettings": "channels", "ChannelSettings": "channels", "with_builtin_channels": "channels",
    "resolve_channel_names": "channels", "resolve_channel_urls": "channels",
    "Outbox": "outbox", "OUTBOX_STREAM": "outbox",
    "Deliverer": "deliver",
    "AlertHistory": "history", "History": "history", "ChannelSet": "channelset",
    "Renderer": "render",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
