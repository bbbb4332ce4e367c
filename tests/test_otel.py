"""zdactivity.otel against the emulator, read back through the SDK's in-memory exporters.

The emulator and the clients come from zdactivity's own pytest plugin (``zendesk_emulator``,
``zendesk_client_factory``).
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import zdactivity
import zdactivity.otel
from zdactivity.client import RequestEvent
from zdactivity.testing import Emulator, Fault
from zdactivity.testing.pytest_plugin import ClientFactory

ROOT = Path(__file__).resolve().parents[1]


class Telemetry:
    """An SDK tracer and meter provider writing to memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def instrument(self, client: zdactivity.Client, agent: str | None = None) -> zdactivity.Client:
        return zdactivity.otel.instrument(
            client,
            agent=agent,
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
        )

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def metrics(self) -> dict[str, list[Any]]:
        """Each metric's data points, by name."""
        data = self.reader.get_metrics_data()
        assert data is not None
        return {
            metric.name: list(metric.data.data_points)
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    telemetry = Telemetry()
    yield telemetry
    telemetry.tracer_provider.shutdown()
    telemetry.meter_provider.shutdown()


def every_value(telemetry: Telemetry) -> list[str]:
    """Every attribute key and value of every span and data point, and span names, as text."""
    texts: list[str] = []
    for span in telemetry.spans():
        texts.append(span.name)
        texts.extend(f"{key}={value}" for key, value in (span.attributes or {}).items())
        texts.append(str(span.status.description))
    for points in telemetry.metrics().values():
        for point in points:
            texts.extend(f"{key}={value}" for key, value in point.attributes.items())
    return texts


@pytest.mark.zendesk_emulator(agents=2, activities_per_agent=25, seed=4)
async def test_one_client_span_per_attempt_with_retries_and_metrics(
    zendesk_emulator: Emulator, zendesk_client_factory: ClientFactory, telemetry: Telemetry
) -> None:
    emu = zendesk_emulator
    agent = emu.agents[0]
    zd = telemetry.instrument(
        zendesk_client_factory(agent, auth=zdactivity.OAuthToken(agent.oauth_token)),
        agent="alice",
    )
    emu.inject(Fault.status(429, retry_after=1), Fault.status(500))
    since = "2026-01-01T00:00:00Z"
    pages = [page async for page in zd.activities.list(since=since, page_size=10).pages()]
    listed = [a.id for page in pages for a in page.activities]
    assert listed == [a["id"] for a in emu.activities_for(agent)]
    cursors = [page.after_cursor for page in pages if page.after_cursor]
    assert cursors

    spans = telemetry.spans()
    assert len(spans) == len(emu.requests) == len(pages) + 2  # two attempts were retried
    statuses = [span.attributes["http.response.status_code"] for span in spans]  # type: ignore[index]
    assert statuses == [r.status for r in emu.requests] == [429, 500] + [200] * len(pages)
    host = urlsplit(emu.url)
    for index, span in enumerate(spans):
        attributes = dict(span.attributes or {})
        assert span.kind is SpanKind.CLIENT
        assert span.name == "GET /api/v2/activities"
        assert attributes["http.request.method"] == "GET"
        assert attributes["url.template"] == "/api/v2/activities"
        assert attributes["server.address"] == host.hostname
        assert attributes["server.port"] == host.port
        assert attributes["zendesk.request_id"] == emu.requests[index].request_id
        assert attributes["zdactivity.rate_limiter.wait"] >= 0  # type: ignore[operator]
        url = urlsplit(str(attributes["url.full"]))
        assert f"{url.scheme}://{url.netloc}" == emu.url
        assert url.path == "/api/v2/activities"
        query = dict(parse_qsl(url.query))
        assert query["since"] == "REDACTED" and query["page[size]"] == "10"
        assert query.get("page[after]", "REDACTED") == "REDACTED"
        assert span.start_time is not None and span.end_time is not None
        assert span.start_time <= span.end_time
    # attempts 1, 2, 3 of the first page; then one attempt per page
    assert [s.attributes.get("http.request.resend_count") for s in spans[:4]] == [None, 1, 2, None]  # type: ignore[union-attr]
    assert [s.attributes.get("error.type") for s in spans[:3]] == ["429", "500", None]  # type: ignore[union-attr]
    assert [s.status.status_code for s in spans[:3]] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    followed = sum("page[after]=REDACTED" in str(s.attributes["url.full"]) for s in spans)  # type: ignore[index]
    assert followed == len(pages) - 1

    metrics = telemetry.metrics()
    assert sum(p.value for p in metrics["zdactivity.requests"]) == len(spans)
    by_status = {
        p.attributes["http.response.status_code"]: p.value for p in metrics["zdactivity.requests"]
    }
    assert by_status == {429: 1, 500: 1, 200: len(pages)}
    assert {p.attributes["error.type"]: p.value for p in metrics["zdactivity.retries"]} == {
        "429": 1,
        "500": 1,
    }
    assert [p.value for p in metrics["zdactivity.rate_limited"]] == [1]
    assert [(dict(p.attributes), p.value) for p in metrics["zdactivity.activities"]] == [
        ({"zendesk.agent": "alice"}, len(listed))
    ]
    assert sum(p.count for p in metrics["zdactivity.rate_limiter.wait"]) == len(spans)
    assert sum(p.count for p in metrics["http.client.request.duration"]) == len(spans)
    assert zd.stats.retries == 2 and zd.stats.rate_limited == 1

    # No credential, cursor or email anywhere in what was exported.
    texts = "\n".join(every_value(telemetry))
    secrets = [agent.oauth_token, agent.api_token, agent.refresh_token, agent.email, *cursors]
    for secret in secrets:
        assert secret not in texts
    for word in ("Authorization", "Bearer", "Basic", "token"):
        assert word.lower() not in texts.lower()
    assert since not in texts


@pytest.mark.zendesk_emulator(agents=1, activities_per_agent=5)
async def test_show_count_and_a_final_error(
    zendesk_emulator: Emulator, zendesk_client: zdactivity.Client, telemetry: Telemetry
) -> None:
    zd = telemetry.instrument(zendesk_client)
    first = zendesk_emulator.activities_for(zendesk_emulator.agents[0])[0]
    activity = await zd.activities.get(first["id"])
    await zd.activities.count()
    with pytest.raises(zdactivity.NotFoundError):
        await zd.activities.get(10**12)
    # aiohttp resends a GET once on a reset: two resets fail one attempt
    zendesk_emulator.inject(*[Fault.reset()] * (2 * zd.retry.max_tries))
    with pytest.raises(zdactivity.ConnectionFailedError):
        await zd.with_auth(zd.auth).activities.count()  # a view shares the instrumented hook

    spans = telemetry.spans()
    names = [span.name for span in spans]
    assert names[:3] == [
        "GET /api/v2/activities/{id}",
        "GET /api/v2/activities/count",
        "GET /api/v2/activities/{id}",
    ]
    assert (
        spans[0].attributes["url.full"] == f"{zendesk_emulator.url}/api/v2/activities/{activity.id}"
    )  # type: ignore[index]
    not_found = dict(spans[2].attributes or {})
    assert not_found["http.response.status_code"] == 404 and not_found["error.type"] == "404"
    assert spans[2].status.status_code is StatusCode.ERROR
    resets = [dict(span.attributes or {}) for span in spans[3:]]
    assert len(resets) == zd.retry.max_tries
    assert all(r["error.type"] == "ConnectionFailedError" for r in resets)
    assert all("http.response.status_code" not in r for r in resets)
    assert [r.get("http.request.resend_count") for r in resets] == [None, *range(1, len(resets))]

    metrics = telemetry.metrics()
    retried = {p.attributes["error.type"]: p.value for p in metrics["zdactivity.retries"]}
    assert retried == {"ConnectionFailedError": len(resets) - 1}  # the 404 and the last: final
    assert [(dict(p.attributes), p.value) for p in metrics["zdactivity.activities"]] == [({}, 1)]
    assert "zdactivity.rate_limited" not in metrics or not any(
        p.value for p in metrics["zdactivity.rate_limited"]
    )


@pytest.mark.zendesk_emulator(agents=1, activities_per_agent=3)
async def test_limiter_wait_is_measured_apart_from_the_exchange(
    zendesk_emulator: Emulator, zendesk_client: zdactivity.Client, telemetry: Telemetry
) -> None:
    events: list[RequestEvent] = []
    zendesk_client.on_request = events.append  # kept: instrument() chains onto it
    zd = telemetry.instrument(zendesk_client)
    zendesk_emulator.latency = 0.05
    # The window's first request goes alone; the other waits in the limiter for its answer.
    await asyncio.gather(zd.activities.count(), zd.activities.count())
    assert len(events) == 2
    waited = max(events, key=lambda e: e.limiter_wait)
    assert 0 < waited.limiter_wait < waited.elapsed
    assert min(e.limiter_wait for e in events) < waited.limiter_wait
    histogram = telemetry.metrics()["zdactivity.rate_limiter.wait"]
    assert sum(p.count for p in histogram) == 2
    assert sum(p.sum for p in histogram) == pytest.approx(sum(e.limiter_wait for e in events))
    span = max(telemetry.spans(), key=lambda s: s.attributes["zdactivity.rate_limiter.wait"])  # type: ignore[index,return-value]
    assert span.attributes["zdactivity.rate_limiter.wait"] == waited.limiter_wait  # type: ignore[index]
    assert span.end_time - span.start_time <= (waited.elapsed - waited.limiter_wait) * 1e9 + 1e6  # type: ignore[operator]


async def test_instrumenting_again_replaces_the_hook_and_spans_have_their_parent(
    zendesk_emulator: Emulator, zendesk_client: zdactivity.Client, telemetry: Telemetry
) -> None:
    telemetry.instrument(zendesk_client)
    telemetry.instrument(zendesk_client, agent="b")
    tracer = telemetry.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handler") as handler:
        await zendesk_client.activities.count()
    [attempt] = [span for span in telemetry.spans() if span.name != "handler"]
    # a child of the span current where the call was awaited
    assert attempt.parent is not None
    assert attempt.parent.span_id == handler.get_span_context().span_id
    assert attempt.context is not None
    assert attempt.context.trace_id == handler.get_span_context().trace_id


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match=r"zdactivity\.Client"):
        zdactivity.otel.instrument(object())  # type: ignore[arg-type]
    client = zdactivity.Client(base_url="http://127.0.0.1:9", auth=zdactivity.OAuthToken("x"))
    with pytest.raises(TypeError, match="agent must be a str"):
        zdactivity.otel.instrument(client, agent=3)  # type: ignore[arg-type]


def test_without_the_extra_a_typed_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [m for m in sys.modules if m == "opentelemetry" or m.startswith("opentelemetry.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # what a missing package looks like
    client = zdactivity.Client(base_url="http://127.0.0.1:9", auth=zdactivity.OAuthToken("x"))
    with pytest.raises(zdactivity.otel.TelemetryUnavailableError, match=r"zdactivity\[otel\]"):
        zdactivity.otel.instrument(client)
    assert issubclass(zdactivity.otel.TelemetryUnavailableError, ImportError)
    assert client.on_request is None


def test_the_core_never_imports_opentelemetry() -> None:
    code = (
        "import sys, zdactivity, zdactivity.client, zdactivity.fleet, zdactivity.otel, "
        "zdactivity.testing; print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "[]"


def test_url_templates() -> None:
    assert zdactivity.otel.url_template("/api/v2/activities/123") == "/api/v2/activities/{id}"
    assert zdactivity.otel.url_template("/api/v2/activities/count") == "/api/v2/activities/count"
    assert zdactivity.otel.url_template("/api/v2/activities") == "/api/v2/activities"


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["since", "page[size]", "page[after]", "page", "per_page", "x"])
            | st.text(min_size=1),
            st.text(),
        ),
        max_size=6,
    )
)
def test_url_full_shows_only_page_sizes_and_numbers(params: list[tuple[str, str]]) -> None:
    event = RequestEvent("GET", "/api/v2/activities", 1, 200, None, 0.0, params=tuple(params))
    path, _, query = zdactivity.otel.full_path(event).partition("?")
    assert path == "/api/v2/activities"
    shown = parse_qsl(query, keep_blank_values=True)
    assert [key for key, _ in shown] == [key for key, _ in params]
    for (key, value), (_, seen) in zip(params, shown, strict=True):
        assert seen == (value if key in zdactivity.otel.SHOWN_PARAMS else "REDACTED")


async def test_the_readme_telemetry_snippet_runs(
    zendesk_emulator: Emulator, telemetry: Telemetry, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Telemetry\n", 1)[1].split("\n## ", 1)[0]
    [snippet] = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
    # The snippet uses the global providers; here, this test's in-memory ones.
    source = snippet.replace(
        'agent="me")',
        'agent="me", tracer_provider=telemetry.tracer_provider, '
        "meter_provider=telemetry.meter_provider)",
    )
    assert source != snippet
    agent = zendesk_emulator.agents[0]
    namespace: dict[str, Any] = {
        "zdactivity": zdactivity,
        "telemetry": telemetry,
        "url": zendesk_emulator.url,
        "auth": zdactivity.APIToken(agent.email, agent.api_token),
    }
    code = compile(source, "README.md Telemetry", "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if inspect.iscoroutine(result):
        await result
    assert capsys.readouterr().out.startswith("ActivityCount(value=")
    [span] = telemetry.spans()
    assert span.name == "GET /api/v2/activities/count"
    assert namespace["zd"].closed


async def test_a_failing_exporter_never_fails_a_request(
    zendesk_client: zdactivity.Client, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(TracerProvider):
        def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
            tracer = super().get_tracer(*args, **kwargs)

            def start_span(*args: Any, **kwargs: Any) -> Any:
                raise RuntimeError("exporter down")

            tracer.start_span = start_span  # type: ignore[method-assign]
            return tracer

    zdactivity.otel.instrument(zendesk_client, tracer_provider=Broken())
    assert (await zendesk_client.activities.count()).value >= 0
    assert "zdactivity.otel could not record an attempt" in caplog.text
