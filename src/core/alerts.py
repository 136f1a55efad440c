"""Failure alerts: e-mail over SMTP and/or a JSON webhook when a run fails.

Configured under ``alerts:`` in the user file ``~/.config/controlplane/config.yaml``
(targets decide where data goes: the committed ``.controlplane.yaml`` may only
choose ``types`` and ``subtypes``, see :mod:`controlplane.core.settings`)::

    alerts:
      types: [deploy, test]          # optional: only these run types
      subtypes: [test:nightly]       # optional: or these subtypes
      email: {host: smtp.example.com, port: 587, starttls: true, user: ci@example.com,
              from: ci@example.com, to: [team@example.com]}
      webhook: {url: https://hooks.example.com/controlplane}

The SMTP password comes from ``CONTROLPLANE_SMTP_PASSWORD`` (environment or
vault), never the file. The webhook never follows a redirect. Best effort: the
bus receiver only enqueues; a worker thread sends, retries a few times with
backoff, and logs what it could not send. A run is never failed or delayed by an alert.

Each alert links to the run page, ``<base>/runs/<run_id>``: *base* is the ``public_url``
setting (flag, environment or user file), else the serve bind address plus the
extension's ``url_prefix`` (``page_base``).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import smtplib
import socket
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

from pydantic import BaseModel, Field, HttpUrl

from controlplane.core import redact, settings
from controlplane.core.events import EventBus

log = logging.getLogger(__name__)

PASSWORD_ENV = "CONTROLPLANE_SMTP_PASSWORD"


class EmailTarget(BaseModel):
    host: str
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    user: str | None = None
    sender: str = Field(..., alias="from")
    to: list[str] = Field(..., min_length=1)
    timeout: float = 10.0


class WebhookTarget(BaseModel):
    url: HttpUrl
    timeout: float = 10.0


class AlertConfig(BaseModel):
    types: list[str] = []
    subtypes: list[str] = []
    email: EmailTarget | None = None
    webhook: WebhookTarget | None = None
    retries: int = Field(3, ge=0, le=10)
    backoff_seconds: float = Field(2.0, ge=0, le=300)

    def wants(self, run: dict[str, Any]) -> bool:
        """True for a failed run of a chosen type or subtype (any, if none is chosen)."""
        if run.get("status") not in ("failed", "interrupted"):
            return False
        if not self.types and not self.subtypes:
            return True
        return run.get("type") in self.types or run.get("subtype") in self.subtypes


WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


def page_base(settings_values: dict[str, Any], url_prefix: str = "") -> str:
    """Where the run pages start for a reader of the alert (no trailing slash).

    ``public_url`` when set (it already names the prefix: the proxy may move it), else
    ``http://<bind host>:<port><url_prefix>``; a wildcard bind names this machine.
    """
    public = str(settings_values.get("public_url") or "").strip()
    if public:
        problem = public_url_problem(public)
        if problem is None:
            return public.rstrip("/")
        log.warning("public_url %s; alert links use the bind address instead", problem)
    host = str(settings_values.get("host") or "127.0.0.1")
    if host in WILDCARD_HOSTS:
        host = socket.getfqdn()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings_values.get('port') or 8000}{url_prefix}"


def public_url_problem(url: str) -> str | None:
    """Why *url* cannot start alert links (None if it can): http(s), a host, no
    credentials, query or fragment (a link is mailed to people)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// address with a host"
    if parts.username or parts.password or parts.query or parts.fragment:
        return "must not hold credentials, a query or a fragment"
    return None


def run_url(base: str | None, run: dict[str, Any]) -> str | None:
    """The run page of *run* under *base* (None without a base)."""
    run_id = run.get("run_id")
    return f"{base}/runs/{urllib.parse.quote(str(run_id), safe='')}" if base and run_id else None


def alert_text(run: dict[str, Any], base: str | None = None) -> tuple[str, str]:
    """Subject and body for a failed run (redacted), the body linking to its run page."""
    error = run.get("error") or {}
    subject = f"[controlplane] {run.get('subtype')} {run.get('status')}: {run.get('summary', '')}"
    link = run_url(base, run)
    body = (f"Run {run.get('run_id')} ({run.get('subtype')}) ended {run.get('status')}.\n"
            + (f"Open it: {link}\n" if link else "")
            + f"Error: {error.get('code', '-')}: {error.get('message', '-')}\n"
            f"Started {run.get('started_at')}, took {run.get('duration_ms')} ms on "
            f"{run.get('host')}.\nCode: {json.dumps(run.get('code_ref'))}\n")
    return redact.redact(subject)[:200], redact.redact(body)


def send_email(target: EmailTarget, run: dict[str, Any], base: str | None = None) -> None:
    subject, body = alert_text(run, base)
    message = EmailMessage()
    message["Subject"], message["From"] = subject, target.sender
    message["To"] = ", ".join(target.to)
    message.set_content(body)
    with smtplib.SMTP(target.host, target.port, timeout=target.timeout) as smtp:
        if target.starttls:
            smtp.starttls(context=ssl.create_default_context())
        password = os.environ.get(PASSWORD_ENV)
        if target.user and password:
            smtp.login(target.user, password)
        smtp.send_message(message)


def send_webhook(target: WebhookTarget, run: dict[str, Any], base: str | None = None) -> None:
    subject, body = alert_text(run, base)
    payload = json.dumps({"event": "run:failed", "subject": subject, "text": body,
                          "run_url": run_url(base, run),
                          "run": redact.redact_obj(run)}).encode()
    request = urllib.request.Request(str(target.url), data=payload, method="POST",
                                     headers={"Content-Type": "application/json"})
    with _NO_REDIRECTS.open(request, timeout=target.timeout) as answer:
        answer.read()


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: it could point the alert at loopback or a private address."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> None:
        raise urllib.error.HTTPError(req.full_url, code, f"redirect to {newurl} refused "
                                     "(give the webhook's final URL)", headers, fp)


_NO_REDIRECTS = urllib.request.build_opener(_RefuseRedirects())


class Alerter:
    """Subscribes to ``run:completed`` and sends alerts from one worker thread."""

    def __init__(self, config: AlertConfig, bus: EventBus, base: str | None = None) -> None:
        self.config = config
        self.base = base  # where run pages start (``page_base``): alerts link to the run
        self.sent: list[tuple[str, str]] = []  # (channel, run_id), for people and tests
        self.failed: list[tuple[str, str, str]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=1000)
        self._stop = threading.Event()
        self._disconnect = bus.connect(self._on_event)
        self._worker = threading.Thread(target=self._work, name="scp-alerts", daemon=True)
        self._worker.start()

    def _on_event(self, envelope: dict[str, Any]) -> None:
        if envelope["type"] == "run:completed" and self.config.wants(envelope["data"]):
            try:
                self._queue.put_nowait(envelope["data"])
            except queue.Full:
                log.error("alert queue full: dropped the alert for %s", envelope["run_id"])

    def _channels(self) -> list[tuple[str, Callable[[dict[str, Any]], None]]]:
        channels = []
        if self.config.email is not None:
            email = self.config.email
            channels.append(("email", lambda run: send_email(email, run, self.base)))
        if self.config.webhook is not None:
            hook = self.config.webhook
            channels.append(("webhook", lambda run: send_webhook(hook, run, self.base)))
        return channels

    def _work(self) -> None:
        while not self._stop.is_set():
            run = self._queue.get()
            if run is None:
                return
            for channel, send in self._channels():
                self._deliver(channel, send, run)

    def _deliver(self, channel: str, send: Callable[[dict[str, Any]], None],
                 run: dict[str, Any]) -> None:
        for attempt in range(self.config.retries + 1):
            try:
                send(run)
                self.sent.append((channel, run["run_id"]))
                return
            except Exception as exc:  # best effort: any failure is logged and retried
                reason = f"{type(exc).__name__}: {exc}"
                log.warning("alert by %s for %s failed (attempt %d): %s", channel,
                            run["run_id"], attempt + 1, reason)
                if self._stop.wait(self.config.backoff_seconds * (2 ** attempt)):
                    break
        self.failed.append((channel, run["run_id"], reason))

    def close(self) -> None:
        self._disconnect()
        self._stop.set()
        self._queue.put(None)
        self._worker.join(timeout=10)


def load_alerts(file_values: dict[str, Any]) -> AlertConfig | None:
    """The ``alerts`` section of *file_values*, validated; None if absent."""
    section = file_values.get("alerts")
    if not section:
        return None
    return AlertConfig.model_validate(section)


def alerts_for(project_root: Any) -> AlertConfig | None:
    """The alerts of *project_root*: targets from the user file, types from either file."""
    config = load_alerts({"alerts": settings.section("alerts", project_root)})
    return config if config and (config.email or config.webhook) else None
