"""One apprise send with a total deadline: run in a forked child process that is killed when the deadline passes.

apprise's own `timeout=` only stops waiting: the blocking request goes on in its thread, holding the thread and the
socket for as long as a service drips its answer. A killed process takes its request, socket and thread with it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import logging
import multiprocessing
import threading
from typing import Any

import pebble
from apprise.plugins.custom_form import NotifyForm
from apprise.plugins.custom_json import NotifyJSON
from apprise.plugins.custom_xml import NotifyXML
from apprise.plugins.email import NotifyEmail

from ..workers import _worker_init

log = logging.getLogger(__name__)

ALERT_ID_HEADER = "X-Monitor-Alert-Id"  # the idempotency key of a send, on every service that takes headers
ALERT_ID_FIELD = "alert_id"  # ... and in the JSON / form / XML payload of a generic webhook
_FORK = multiprocessing.get_context("fork")  # the child inherits the loaded plugin: nothing is pickled going in


def tag_service(service: Any, alert_id: str) -> None:
    """Put the alert id in what the service sends besides the text: a header, and a webhook payload field."""
    if isinstance(service, (NotifyJSON, NotifyForm, NotifyXML, NotifyEmail)) and isinstance(service.headers, dict):
        service.headers[ALERT_ID_HEADER] = alert_id
    extras = getattr(service, "payload_extras", None)
    if isinstance(service, (NotifyJSON, NotifyForm, NotifyXML)) and isinstance(extras, dict):
        extras.setdefault(ALERT_ID_FIELD, alert_id)


class _Collect(logging.Handler):
    """In the child: keeps what is logged, for the parent to log again (masked) as if it happened there."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelno, record.getMessage()))


def _fresh_apprise_pools() -> None:
    """apprise's shared thread pools came through fork without their threads (and their locks maybe held by a
    thread that is not here): the child makes its own on first use."""
    module = importlib.import_module("apprise.apprise")
    for name in ("_shared_executor", "_coordinator_executor"):
        if hasattr(module, name):
            setattr(module, name, None)
            setattr(module, name + "_lock", threading.Lock())


def _send(ap: Any, alert_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """In the child: one apprise notify. Returns what the parent needs (picklable)."""
    _worker_init()  # forget the daemon's signal set-up, so the kill at the deadline reaches this process only
    collect = _Collect()
    logging.getLogger().handlers[:] = [collect]
    _fresh_apprise_pools()
    for service in ap:
        tag_service(service, alert_id)
    result = ap.notify(**kwargs)
    notes = [e.message for r in result.results for e in r.logs() if e.level in ("WARNING", "ERROR")]
    notes += [e.message for e in result.call_logs() if e.level in ("WARNING", "ERROR")]
    return {"ok": bool(result), "status": result.status.name, "notes": notes, "logs": collect.records}


async def send_in_child(ap: Any, *, alert_id: str, timeout: float, **kwargs: Any) -> dict[str, Any]:
    """{"ok", "status", "notes"} of one send, which ends (killed, with its socket) at `timeout` seconds."""
    future = pebble.concurrent.process(timeout=timeout, mp_context=_FORK)(_send)(ap, alert_id, kwargs)
    try:
        answer = await asyncio.wrap_future(future)
    except concurrent.futures.TimeoutError:
        return {"ok": False, "status": "TIMEOUT", "notes": [f"no answer within {timeout:g}s; the send was stopped"]}
    except pebble.ProcessExpired as exc:
        return {"ok": False, "status": "FAILURE", "notes": [f"send process died (exit code {exc.exitcode})"]}
    except asyncio.CancelledError:
        future.cancel()  # kills the child: shutdown must not leave a send running
        raise
    except Exception as exc:  # noqa: BLE001 - a plugin's unexpected error is this send's failure, not the loop's
        return {"ok": False, "status": "FAILURE", "notes": [f"{type(exc).__name__}: {exc}"]}
    for name, level, message in answer.pop("logs"):
        logging.getLogger(name).log(level, "%s", message)  # masked again on the way (logs.add_secrets)
    return answer
