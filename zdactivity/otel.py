"""OpenTelemetry for a client: one CLIENT span per attempt, and the client's metrics.

Needs the ``otel`` extra (``pip install 'zdactivity[otel]'``, which adds opentelemetry-api);
the rest of zdactivity never imports OpenTelemetry. One call turns it on::

    import zdactivity.otel

    zd = zdactivity.otel.instrument(zdactivity.Client(subdomain="acme", auth=auth))

It chains onto the client's ``on_request`` hook (:class:`~zdactivity.RequestEvent`), so every
attempt, retries included, becomes a span after OpenTelemetry's HTTP client conventions, a child
of the span current where the call was awaited:

- name ``GET /api/v2/activities`` (the method and ``url.template``); ``http.request.method``,
  ``url.full`` (the account's URL and the path; the query's values but the page size and number
  are ``REDACTED``, so ``since`` and cursors never leave the process), ``url.template``
  (``/api/v2/activities/{id}`` for one activity), ``server.address``, ``server.port``,
  ``http.response.status_code``, ``error.type`` (the status code from 400 up, else the error's
  class), ``http.request.resend_count`` (from the second attempt on), ``zendesk.request_id``,
  ``zdactivity.rate_limiter.wait`` (seconds in the limiter); status ERROR for a failed attempt.
  The span covers the HTTP exchange, not the wait in the limiter before it.

Metrics (meter ``zdactivity``): ``http.client.request.duration`` (s), ``zdactivity.requests``
(attempts), ``zdactivity.retries`` (attempts that are retried), ``zdactivity.rate_limited``
(429 answers), ``zdactivity.rate_limiter.wait`` (s, a histogram), and
``zdactivity.activities`` (activities received, by ``zendesk.agent``, the ``agent=`` label you
give). No attribute carries a credential, a cursor or an email address.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from .client import Client, RequestEvent
from .protocol import ACTIVITIES_PATH

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = ["TelemetryUnavailableError", "instrument"]

log = logging.getLogger("zdactivity")

#: Query parameters whose values ``url.full`` shows; any other (``since``, the cursor, a
#: parameter added later) shows as ``REDACTED``.
SHOWN_PARAMS = frozenset({"page[size]", "page", "per_page"})
#: ``zendesk.request_id`` is the server's: keep at most this much of it.
MAX_REQUEST_ID = 128


class TelemetryUnavailableError(ImportError):
    """OpenTelemetry is not installed: ``pip install 'zdactivity[otel]'``."""


def instrument(
    client: Client,
    *,
    agent: str | None = None,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> Client:
    """Report every attempt of ``client`` to OpenTelemetry; returns ``client``.

    ``agent``: the ``zendesk.agent`` label of the activities counted (say the key you give the
    agent in ``fan_out``; never a credential); None counts them without it. Instrument each
    ``with_auth`` view with its own label: a view made afterwards shares its client's hook.
    ``tracer_provider`` / ``meter_provider``: the global ones by default. A hook already set
    as ``on_request`` is still called, first.
    """
    if not isinstance(client, Client):
        raise TypeError(f"instrument() takes a zdactivity.Client, not {type(client).__name__}")
    if agent is not None and not isinstance(agent, str):
        raise TypeError(f"agent must be a str label, not {type(agent).__name__}")
    try:
        from opentelemetry import metrics, trace
    except ImportError as exc:
        raise TelemetryUnavailableError(
            "zdactivity.otel needs OpenTelemetry: pip install 'zdactivity[otel]'"
        ) from exc
    from ._version import __version__

    tracer = trace.get_tracer("zdactivity", __version__, tracer_provider=tracer_provider)
    meter = metrics.get_meter("zdactivity", __version__, meter_provider=meter_provider)
    previous = client.on_request
    if isinstance(previous, _Hook):  # instrumented again: replace, do not report twice
        previous = previous.previous
    hook = _Hook(client.base_url, agent, tracer, meter, previous)
    client.on_request = hook
    return client


class _Hook:
    """The ``on_request`` hook: one event in, one span and a few measurements out."""

    def __init__(
        self,
        base_url: str,
        agent: str | None,
        tracer: Any,
        meter: Any,
        previous: Any,
    ) -> None:
        from opentelemetry.trace import SpanKind, StatusCode

        self._kind = SpanKind.CLIENT
        self._error_status = StatusCode.ERROR
        self._base_url = base_url
        parts = urlsplit(base_url)
        self._server = {
            "server.address": parts.hostname or "",
            "server.port": parts.port or (443 if parts.scheme == "https" else 80),
        }
        self._agent = {} if agent is None else {"zendesk.agent": agent}
        self._tracer = tracer
        self.previous = previous
        self._duration = meter.create_histogram(
            "http.client.request.duration", unit="s", description="Duration of HTTP requests."
        )
        self._requests = meter.create_counter(
            "zdactivity.requests", unit="{request}", description="Attempts, retries included."
        )
        self._retries = meter.create_counter(
            "zdactivity.retries", unit="{request}", description="Attempts that are retried."
        )
        self._rate_limited = meter.create_counter(
            "zdactivity.rate_limited", unit="{request}", description="Answers of 429."
        )
        self._limiter_wait = meter.create_histogram(
            "zdactivity.rate_limiter.wait",
            unit="s",
            description="Time an attempt waited in the account's rate limiter.",
        )
        self._activities = meter.create_counter(
            "zdactivity.activities", unit="{activity}", description="Activities received."
        )

    def __call__(self, event: RequestEvent) -> None:
        if self.previous is not None:
            self.previous(event)
        try:
            self._record(event)
        except Exception:  # telemetry never fails a request
            log.warning("zdactivity.otel could not record an attempt", exc_info=True)

    def _record(self, event: RequestEvent) -> None:
        template = url_template(event.path)
        attributes: dict[str, Any] = {
            "http.request.method": event.method,
            "url.template": template,
            **self._server,
        }
        if event.status is not None:
            attributes["http.response.status_code"] = event.status
        if event.error is not None:
            attributes["error.type"] = (
                str(event.status)
                if event.status is not None and event.status >= 400
                else type(event.error).__name__
            )
        span_attributes = {**attributes, "url.full": self._base_url + full_path(event)}
        if event.attempt > 1:
            span_attributes["http.request.resend_count"] = event.attempt - 1
        if event.request_id:
            span_attributes["zendesk.request_id"] = event.request_id[:MAX_REQUEST_ID]
        wait = _seconds(event.limiter_wait)
        span_attributes["zdactivity.rate_limiter.wait"] = wait
        exchange = max(_seconds(event.elapsed) - wait, 0.0)
        end = time.time_ns()
        span = self._tracer.start_span(
            f"{event.method} {template}",
            kind=self._kind,
            attributes=span_attributes,
            start_time=end - int(exchange * 1e9),
        )
        if event.error is not None:
            span.set_status(self._error_status, attributes["error.type"])
        span.end(end_time=end)

        self._duration.record(exchange, attributes)
        self._requests.add(1, attributes)
        self._limiter_wait.record(wait, {"http.request.method": event.method, **self._server})
        if event.error is not None and event.retry_in is not None:
            self._retries.add(1, {"error.type": attributes["error.type"]})
        if event.status == 429:
            self._rate_limited.add(1, self._server)
        if event.activities:
            self._activities.add(event.activities, self._agent)


def url_template(path: str) -> str:
    """``path`` with an activity's id replaced by ``{id}``: one name for every show request."""
    prefix = ACTIVITIES_PATH + "/"
    if path.startswith(prefix) and path[len(prefix) :].isdigit():
        return prefix + "{id}"
    return path


def full_path(event: RequestEvent) -> str:
    """The event's path and query, every value but those of :data:`SHOWN_PARAMS` ``REDACTED``."""
    if not event.params:
        return event.path
    query = "&".join(
        f"{quote(key, safe='[]')}={quote(value) if key in SHOWN_PARAMS else 'REDACTED'}"
        for key, value in event.params
    )
    return f"{event.path}?{query}"


def _seconds(value: float) -> float:
    return value if math.isfinite(value) and value > 0 else 0.0
