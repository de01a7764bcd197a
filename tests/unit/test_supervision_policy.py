"""Pure tests of the supervision policies: restart intensity, held split, send-retry rule."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fusco_actor._future import ReplyFuture
from fusco_actor._inbox import Call, ConnectCommand, DisconnectCommand
from fusco_actor._retry import may_resend
from fusco_actor._supervisor import RestartIntensity, split_held
from fusco_actor.messages import Request

# -- RestartIntensity.record ---------------------------------------------------------------


def test_exactly_max_restarts_crashes_within_the_window_are_allowed() -> None:
    intensity = RestartIntensity(max_restarts=3, max_seconds=10.0)
    verdicts = []
    for now in (100.0, 101.0, 102.0, 103.0):
        intensity, allowed = intensity.record(now)
        verdicts.append(allowed)
    assert verdicts == [True, True, True, False]


def test_zero_max_restarts_gives_up_at_the_first_crash() -> None:
    _, allowed = RestartIntensity(max_restarts=0, max_seconds=10.0).record(5.0)
    assert allowed is False


def test_crashes_older_than_the_window_are_forgotten() -> None:
    intensity = RestartIntensity(max_restarts=2, max_seconds=10.0)
    intensity, _ = intensity.record(0.0)
    intensity, _ = intensity.record(1.0)
    # 0.0 and 1.0 are 10 s or more in the past at 11.0: only 11.0 remains.
    intensity, allowed = intensity.record(11.0)
    assert allowed is True
    assert intensity.crashes == (11.0,)


def test_a_crash_just_inside_the_window_still_counts() -> None:
    intensity = RestartIntensity(max_restarts=1, max_seconds=10.0)
    intensity, allowed = intensity.record(0.0)
    assert allowed is True
    intensity, allowed = intensity.record(9.999)
    assert allowed is False
    assert intensity.crashes == (0.0, 9.999)


def test_crashes_spread_wider_than_the_window_never_give_up() -> None:
    intensity = RestartIntensity(max_restarts=1, max_seconds=1.0)
    for i in range(50):
        intensity, allowed = intensity.record(i * 1.5)
        assert allowed is True
        assert len(intensity.crashes) == 1


def test_record_returns_a_new_value_and_leaves_the_old_one_alone() -> None:
    before = RestartIntensity(max_restarts=5, max_seconds=10.0)
    after, _ = before.record(1.0)
    assert before.crashes == ()
    assert after.crashes == (1.0,)
    assert (after.max_restarts, after.max_seconds) == (5, 10.0)


# -- split_held ----------------------------------------------------------------------------


def make_call(method: str = "GET", *, sends: int = 0, send_retry: int | None = 1) -> Call:
    call = Call(Request("/x", method, (), b"body" if method == "POST" else b"", None, send_retry))
    call.sends = sends
    return call


def test_queued_commands_are_always_sent_again() -> None:
    held = [
        make_call("GET", sends=0, send_retry=0),
        make_call("POST", sends=0, send_retry=0),
        ConnectCommand(ReplyFuture()),
        DisconnectCommand(ReplyFuture()),
    ]
    again, failed = split_held(held)
    assert again == held
    assert failed == []


@pytest.mark.parametrize(
    ("sends", "send_retry", "resent"),
    [(1, 1, True), (1, 2, True), (2, 2, True), (2, 1, False), (1, 0, False), (3, 2, False)],
)
def test_a_sent_get_goes_again_while_sends_do_not_exceed_send_retry(
    sends: int, send_retry: int, resent: bool
) -> None:
    call = make_call("GET", sends=sends, send_retry=send_retry)
    again, failed = split_held([call])
    assert (again, failed) == (([call], []) if resent else ([], [call]))


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("send_retry", [0, 1, 5])
def test_a_sent_non_idempotent_request_fails(method: str, send_retry: int) -> None:
    call = make_call(method, sends=1, send_retry=send_retry)
    assert split_held([call]) == ([], [call])


@pytest.mark.parametrize("method", ["PUT", "DELETE", "HEAD", "OPTIONS", "TRACE"])
def test_other_idempotent_methods_go_again_like_get(method: str) -> None:
    call = make_call(method, sends=1, send_retry=1)
    assert split_held([call]) == ([call], [])


def test_resolved_futures_are_skipped() -> None:
    done_ok = make_call("GET")
    done_ok.future.try_set("response")
    done_err = make_call("POST", sends=1)
    done_err.future.try_fail(RuntimeError("boom"))
    live = make_call("GET")
    assert split_held([done_ok, done_err, live]) == ([live], [])


def test_split_keeps_the_order_of_the_held_commands() -> None:
    in_flight = make_call("GET", sends=1)
    queued = [make_call("GET") for _ in range(5)]
    posted = make_call("POST", sends=1)
    again, failed = split_held([in_flight, *queued, posted])
    assert again == [in_flight, *queued]
    assert failed == [posted]


def test_a_sent_one_shot_stream_body_cannot_go_again() -> None:
    call = Call(Request("/x", "PUT", (), iter([b"a", b"b"]), None, 3))
    call.sends = 1
    assert split_held([call]) == ([], [call])


# -- may_resend ----------------------------------------------------------------------------

# (idempotent, send_failed, reused, sends, send_retry) -> may resend
MAY_RESEND_CASES = [
    # idempotent: resent on any close while the budget lasts
    (True, False, False, 1, 1, True),
    (True, True, False, 1, 1, True),
    (True, False, True, 1, 1, True),
    (True, False, False, 2, 1, False),
    (True, False, False, 1, 0, False),
    (True, True, True, 3, 3, True),
    (True, True, True, 4, 3, False),
    # non-idempotent: only when the server cannot have seen it
    (False, False, False, 1, 1, False),
    (False, True, False, 1, 1, True),
    (False, False, True, 1, 1, True),
    (False, True, True, 1, 1, True),
    (False, True, False, 2, 1, False),
    (False, False, True, 1, 0, False),
    (False, False, False, 1, 5, False),
]


@pytest.mark.parametrize(
    ("idempotent", "send_failed", "reused", "sends", "send_retry", "expected"), MAY_RESEND_CASES
)
def test_may_resend_follows_the_send_retry_table(
    idempotent: bool, send_failed: bool, reused: bool, sends: int, send_retry: int, expected: bool
) -> None:
    verdict = may_resend(
        idempotent=idempotent,
        send_failed=send_failed,
        reused=reused,
        sends=sends,
        send_retry=send_retry,
    )
    assert verdict is expected


# -- property: a request is never sent more than send_retry + 1 times ----------------------

# One close event per attempt: (send_failed, reused), or None for "a response came".
close_events = st.lists(st.one_of(st.none(), st.tuples(st.booleans(), st.booleans())), max_size=30)


def simulate_sends(
    events: Sequence[tuple[bool, bool] | None], idempotent: bool, send_retry: int
) -> int:
    """Replay the client's loop: write, then either a response or a close that may resend."""
    sends = 0
    for event in [*events, None]:  # the server answers once the scripted closes run out
        sends += 1
        if event is None:
            break
        send_failed, reused = event
        if not may_resend(
            idempotent=idempotent,
            send_failed=send_failed,
            reused=reused,
            sends=sends,
            send_retry=send_retry,
        ):
            break
    return sends


@given(events=close_events, idempotent=st.booleans(), send_retry=st.integers(0, 10))
def test_a_request_is_never_sent_more_than_send_retry_plus_one_times(
    events: list[tuple[bool, bool] | None], idempotent: bool, send_retry: int
) -> None:
    assert 1 <= simulate_sends(events, idempotent, send_retry) <= send_retry + 1


@given(
    events=st.lists(st.tuples(st.booleans(), st.booleans()), max_size=30),
    send_retry=st.integers(0, 10),
)
def test_an_idempotent_request_uses_its_whole_budget_before_giving_up(
    events: list[tuple[bool, bool]], send_retry: int
) -> None:
    # Every attempt closes: it is sent exactly min(closes + 1, send_retry + 1) times.
    assert simulate_sends(events, True, send_retry) == min(len(events) + 1, send_retry + 1)


@given(
    crashes=st.lists(st.sampled_from(["close", "crash"]), max_size=20),
    send_retry=st.integers(0, 5),
)
def test_closes_and_crashes_together_never_send_a_get_more_than_send_retry_plus_one_times(
    crashes: list[str], send_retry: int
) -> None:
    # A crash while on the wire goes through split_held; a close through may_resend.
    call = make_call("GET", send_retry=send_retry)
    for event in [*crashes, "answer"]:
        call.sends += 1
        if event == "answer":
            break
        if event == "crash":
            again, _ = split_held([call])
            if not again:
                break
        elif not may_resend(
            idempotent=True, send_failed=False, reused=True, sends=call.sends, send_retry=send_retry
        ):
            break
    assert call.sends <= send_retry + 1
