"""RetryPolicy: the pure decision of whether, and how long, to wait before the next attempt."""

from __future__ import annotations

import asyncio
import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zdactivity import (
    APIError,
    AuthenticationError,
    DecodeError,
    InvalidRequestError,
    NotFoundError,
    PaginationDepthError,
    PaginationError,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    TransportError,
    ZendeskError,
)


def identity(delay: float) -> float:
    return delay


def policy(**kw: object) -> RetryPolicy:
    kw.setdefault("jitter", identity)
    return RetryPolicy(**kw)  # type: ignore[arg-type]


# --- backoff_delay ----------------------------------------------------------------------------


def test_backoff_delay_doubles_from_base_and_caps() -> None:
    pol = policy(base_delay=0.5, max_delay=30.0)
    delays = [pol.backoff_delay(n) for n in range(1, 10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


@pytest.mark.parametrize(
    ("base", "cap", "expected"),
    [
        (1.0, 5.0, [1.0, 2.0, 4.0, 5.0, 5.0]),
        (0.25, 1.0, [0.25, 0.5, 1.0, 1.0, 1.0]),
        (2.0, 1.0, [1.0, 1.0, 1.0, 1.0, 1.0]),  # a cap below the base wins
        (0.0, 10.0, [0.0, 0.0, 0.0, 0.0, 0.0]),
        (3.0, 0.0, [0.0, 0.0, 0.0, 0.0, 0.0]),
    ],
)
def test_backoff_delay_table(base: float, cap: float, expected: list[float]) -> None:
    pol = policy(base_delay=base, max_delay=cap)
    assert [pol.backoff_delay(n) for n in range(1, 6)] == expected


def test_backoff_delay_goes_through_jitter() -> None:
    seen: list[float] = []

    def half(delay: float) -> float:
        seen.append(delay)
        return delay / 2

    pol = RetryPolicy(base_delay=1.0, max_delay=6.0, jitter=half)
    assert [pol.backoff_delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]
    assert seen == [1.0, 2.0, 4.0, 6.0]


@settings(max_examples=50)
@given(st.integers(min_value=1, max_value=60))
def test_default_full_jitter_stays_within_the_exponential_bound(attempt: int) -> None:
    pol = RetryPolicy(base_delay=0.5, max_delay=30.0)
    bound = min(0.5 * 2 ** (attempt - 1), 30.0)
    delay = pol.backoff_delay(attempt)
    assert 0.0 <= delay <= bound


# --- delay_for: Retry-After -------------------------------------------------------------------


def never_jitter(delay: float) -> float:
    raise AssertionError("Retry-After waits must not be jittered")


@pytest.mark.parametrize("retry_after", [0.0, 1.0, 1.5, 7.0, 60.0, 300.0])
def test_429_waits_exactly_retry_after(retry_after: float) -> None:
    pol = RetryPolicy(jitter=never_jitter, max_time=1000.0)
    error = RateLimitError(429, retry_after=retry_after)
    assert pol.delay_for(error, 1, 0.0) == retry_after
    assert pol.delay_for(error, 4, 0.0) == retry_after  # not scaled by the attempt


def test_503_waits_exactly_retry_after() -> None:
    pol = RetryPolicy(jitter=never_jitter)
    assert pol.delay_for(ServerError(503, retry_after=12.0), 2, 3.0) == 12.0


@pytest.mark.parametrize(
    "error", [RateLimitError(429, retry_after=301.0), ServerError(503, retry_after=3600.0)]
)
def test_retry_after_above_the_limit_gives_up(error: APIError) -> None:
    assert policy().delay_for(error, 1, 0.0) is None
    generous = policy(max_retry_after=4000.0, max_time=5000.0)
    assert generous.delay_for(error, 1, 0.0) == error.retry_after


def test_retry_after_at_the_limit_waits() -> None:
    pol = policy(max_retry_after=10.0)
    assert pol.delay_for(RateLimitError(429, retry_after=10.0), 1, 0.0) == 10.0
    assert pol.delay_for(RateLimitError(429, retry_after=10.01), 1, 0.0) is None


@pytest.mark.parametrize("attempt", [1, 2, 3, 4])
def test_429_without_retry_after_backs_off(attempt: int) -> None:
    pol = policy(base_delay=0.5, max_delay=30.0)
    expected = 0.5 * 2 ** (attempt - 1)
    assert pol.delay_for(RateLimitError(429), attempt, 0.0) == expected
    assert pol.delay_for(ServerError(503), attempt, 0.0) == expected


def test_retry_after_beyond_max_time_gives_up() -> None:
    pol = policy(max_time=60.0)
    error = RateLimitError(429, retry_after=30.0)
    assert pol.delay_for(error, 1, 30.0) == 30.0  # exactly at the budget is fine
    assert pol.delay_for(error, 1, 30.5) is None


# --- delay_for: backoff -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        ServerError(500),
        ServerError(502),
        ServerError(504),
        ServerError(520),
        ServerError(500, retry_after=99.0),  # Retry-After only counts on 429/503
        TransportError("connection reset by peer"),
        TransportError("timed out"),
        DecodeError("body is not valid JSON: truncated"),
    ],
    ids=repr,
)
def test_temporary_failures_back_off_exponentially(error: ZendeskError) -> None:
    pol = policy(base_delay=0.5, max_delay=6.0, max_tries=10, max_time=1000.0)
    delays = [pol.delay_for(error, n, 0.0) for n in range(1, 10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 6.0, 6.0, 6.0, 6.0, 6.0]


def test_backoff_uses_jitter() -> None:
    pol = RetryPolicy(base_delay=1.0, jitter=lambda d: d / 4)
    assert pol.delay_for(ServerError(500), 3, 0.0) == 1.0
    assert pol.delay_for(TransportError("reset"), 1, 0.0) == 0.25


def test_decode_error_with_a_path_is_not_retried() -> None:
    pol = policy()
    shape = DecodeError("Expected `int`, got `str`", path="$.activities[0].id")
    assert pol.delay_for(shape, 1, 0.0) is None
    assert pol.delay_for(DecodeError("empty body"), 1, 0.0) == 0.5


def test_decode_errors_can_be_switched_off() -> None:
    pol = policy(retry_decode_errors=False)
    assert pol.delay_for(DecodeError("body is not valid JSON"), 1, 0.0) is None
    assert pol.delay_for(ServerError(500), 1, 0.0) == 0.5


@pytest.mark.parametrize(
    "error",
    [
        InvalidRequestError(400, code="RecordInvalid"),
        AuthenticationError(401),
        PermissionDeniedError(403),
        NotFoundError(404, code="RecordNotFound"),
        InvalidRequestError(422),
        APIError(409),
        APIError(302),
        APIError(400, retry_after=1.0),
        PaginationError("repeated cursor"),
        PaginationDepthError("page 101"),
        ZendeskError("something else"),
    ],
    ids=repr,
)
def test_permanent_failures_are_not_retried(error: ZendeskError) -> None:
    pol = policy(max_tries=100, max_time=10_000.0)
    assert all(pol.delay_for(error, n, 0.0) is None for n in range(1, 5))


# --- budgets ----------------------------------------------------------------------------------


def test_max_tries_counts_attempts() -> None:
    pol = policy(max_tries=3)
    error = TransportError("reset")
    assert pol.delay_for(error, 1, 0.0) == 0.5
    assert pol.delay_for(error, 2, 0.0) == 1.0
    assert pol.delay_for(error, 3, 0.0) is None
    assert pol.delay_for(error, 4, 0.0) is None
    assert pol.delay_for(RateLimitError(429, retry_after=1.0), 3, 0.0) is None


def test_max_time_bounds_the_wait() -> None:
    pol = policy(max_time=10.0, base_delay=2.0, max_delay=100.0)
    assert pol.delay_for(ServerError(500), 2, 6.0) == 4.0  # 6 + 4 == 10
    assert pol.delay_for(ServerError(500), 2, 6.5) is None
    assert pol.delay_for(ServerError(500), 1, 9.0) is None
    assert pol.delay_for(ServerError(500), 1, 11.0) is None


def test_no_retry() -> None:
    pol = RetryPolicy.no_retry()
    assert pol.max_tries == 1
    for error in (
        ServerError(500),
        ServerError(503, retry_after=1.0),
        RateLimitError(429, retry_after=0.0),
        TransportError("reset"),
        DecodeError("truncated"),
    ):
        assert pol.delay_for(error, 1, 0.0) is None


def test_defaults() -> None:
    pol = RetryPolicy()
    assert (pol.max_tries, pol.max_time, pol.base_delay, pol.max_delay) == (5, 120.0, 0.5, 30.0)
    assert pol.max_retry_after == 300.0
    assert pol.retry_decode_errors is True


def test_testing_policy_keeps_the_rules_and_drops_the_wait() -> None:
    pol = policy(max_tries=7, base_delay=2.0)
    fast = pol.testing()
    assert fast.sleep is not pol.sleep
    assert dataclasses.replace(fast, sleep=pol.sleep) == pol
    assert fast.delay_for(ServerError(500), 2, 0.0) == pol.delay_for(ServerError(500), 2, 0.0)
    asyncio.run(asyncio.wait_for(fast.sleep(3600.0), timeout=1.0))  # returns at once


def test_repr_hides_callables() -> None:
    text = repr(RetryPolicy())
    assert "max_tries=5" in text
    assert "sleep" not in text
    assert "jitter" not in text


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_tries": 0},
        {"max_tries": -3},
        {"max_time": 0.0},
        {"max_time": -1.0},
        {"base_delay": -0.1},
        {"max_delay": -1.0},
    ],
    ids=repr,
)
def test_invalid_construction(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{"max_retry_after": -1.0}, {"max_time": math.nan}, {"base_delay": math.nan}],
    ids=repr,
)
def test_invalid_construction_not_yet_caught(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# --- property: budgets always hold ------------------------------------------------------------

RETRY_AFTER = st.none() | st.floats(min_value=0.0, max_value=1000.0)
ERRORS = st.one_of(
    st.builds(lambda ra: RateLimitError(429, retry_after=ra), RETRY_AFTER),
    st.builds(lambda s, ra: ServerError(s, retry_after=ra), st.integers(500, 599), RETRY_AFTER),
    st.builds(TransportError, st.sampled_from(["reset", "timed out", "DNS"])),
    st.builds(lambda path: DecodeError("bad", path=path), st.none() | st.just("$.activities")),
    st.builds(APIError, st.sampled_from([302, 400, 401, 403, 404, 409, 422])),
)
POLICIES = st.builds(
    RetryPolicy,
    max_tries=st.integers(min_value=1, max_value=12),
    max_time=st.floats(min_value=0.01, max_value=600.0),
    base_delay=st.floats(min_value=0.0, max_value=10.0),
    max_delay=st.floats(min_value=0.0, max_value=120.0),
    max_retry_after=st.floats(min_value=0.0, max_value=600.0),
    retry_decode_errors=st.booleans(),
    jitter=st.sampled_from([identity, lambda d: d / 2, lambda d: 0.0]),
)


@settings(max_examples=150)
@given(
    POLICIES,
    st.lists(st.tuples(ERRORS, st.floats(min_value=0.0, max_value=5.0)), max_size=15),
)
def test_retries_and_total_delay_stay_within_budget(
    pol: RetryPolicy, failures: list[tuple[ZendeskError, float]]
) -> None:
    elapsed = 0.0  # time spent, requests and waits
    waited = 0.0  # time spent waiting only
    retries = 0
    for attempt, (error, request_time) in enumerate(failures, start=1):
        elapsed += request_time
        delay = pol.delay_for(error, attempt, elapsed)
        if delay is None:
            break
        assert delay >= 0.0
        assert elapsed + delay <= pol.max_time
        if (
            isinstance(error, APIError)
            and error.status in (429, 503)
            and error.retry_after is not None
        ):
            assert delay == error.retry_after <= pol.max_retry_after
        elapsed += delay
        waited += delay
        retries += 1
    assert retries <= pol.max_tries - 1
    assert waited <= pol.max_time
    assert elapsed <= pol.max_time + sum(t for _, t in failures)
