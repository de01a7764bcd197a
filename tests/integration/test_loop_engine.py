"""The event-loop client actor (issue 10, in progress) passes the tests it already serves.

Every test here is one of the threaded engine's, collected again under
``FUSCO_ACTOR_ENGINE=loop`` (see docs/engine.md): what the loop engine serves
cannot regress while the rest is built. Tests that look into a client's
connection do it through ``tests.helpers`` (``client_socket``, ``client_tls``...),
which serve both engines. Tests that need what the loop engine does not serve
yet (streamed uploads, ``Expect: 100-continue``, crash injection) are not listed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fusco_actor._handle import ENGINE_ENV
from tests.actors import test_pool as _pool
from tests.faults import test_desync as _desync
from tests.faults import test_stop_and_callbacks as _stop
from tests.integration import test_async as _async
from tests.integration import test_blocking as _blocking
from tests.integration import test_client as _client
from tests.integration import test_connect_options as _connect_options
from tests.integration import test_hardening as _hardening
from tests.integration import test_pipelining as _pipelining
from tests.integration import test_streaming as _streaming
from tests.integration import test_tls as _tls


@pytest.fixture(autouse=True)
def _loop_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(ENGINE_ENV, "loop")
    yield


test_loop_stray_bytes = _desync.test_bytes_after_a_complete_response_close_the_connection
test_loop_idle_push = (
    _desync.test_a_response_pushed_onto_an_idle_connection_is_never_taken_as_the_next_answer
)
test_loop_pipe_stray = (
    _desync.test_with_pipelining_bytes_beyond_the_expected_responses_close_the_connection
)
test_loop_cancel_on_wire = (
    _async.test_a_cancelled_arequest_on_the_wire_closes_its_connection_and_frees_the_client
)
test_loop_cancel_queued = _async.test_a_cancelled_arequest_still_queued_is_never_sent
test_loop_queued_deadline = (
    _async.test_arequest_queued_behind_a_slow_one_times_out_at_its_own_deadline
)
test_loop_cancel_pipelined = _async.test_cancelling_one_pipelined_arequest_resends_or_fails_no_other
test_loop_many_arequests = _async.test_many_concurrent_arequests_on_one_client
test_loop_pool_arequest = _async.test_pool_arequest
test_loop_close = _client.test_a_response_that_ends_keep_alive_makes_the_client_close_and_reconnect
test_loop_until_close = _client.test_body_without_content_length_is_read_until_the_server_closes
test_loop_trailers = _client.test_chunked_body_with_trailers_exposes_the_trailers
test_loop_connect_timeout = _client.test_connect_timeout_raises_connect_timeout
test_loop_cookies = _client.test_cookies_are_stored_and_sent_only_on_matching_paths
test_loop_disconnect = (
    _client.test_disconnect_serves_queued_requests_then_later_requests_fail_with_client_stopped
)
test_loop_stale_get = (
    _client.test_get_on_a_stale_keep_alive_connection_is_retried_on_a_new_connection
)
test_loop_1xx = _client.test_informational_100_before_the_final_response_is_skipped
test_loop_threads = _client.test_many_threads_share_one_client_on_one_connection
test_loop_on_connect = _client.test_on_connect_is_called_with_the_address_after_a_connect
test_loop_post_fresh = (
    _client.test_post_on_a_fresh_connection_closed_without_a_response_raises_connection_closed
)
test_loop_post_reused = (
    _client.test_post_on_a_reused_keep_alive_connection_closed_without_a_response_is_retried
)
test_loop_refused = _client.test_refused_port_raises_connect_error
test_loop_timeout = _client.test_request_timeout_fails_the_request_and_the_next_request_reconnects
test_loop_response_fields = _client.test_response_fields_describe_the_exchange
test_loop_send_retry_0 = _client.test_send_retry_zero_raises_connection_closed_without_retrying
test_loop_keep_alive = _client.test_sequential_requests_reuse_one_keep_alive_connection
test_loop_truncated = _client.test_truncated_content_length_body_raises_protocol_error
test_loop_max_body = (
    _hardening.test_a_body_over_max_body_size_is_a_protocol_error_and_the_connection_closes
)
test_loop_huge_length = _hardening.test_a_huge_declared_content_length_is_read_as_bytes_arrive
test_loop_spent_deadline = (
    _hardening.test_a_spent_deadline_before_connect_is_a_timeout_not_a_connect_error
)
test_loop_pipe_close = (
    _pipelining.test_connection_close_mid_pipe_resends_the_rest_even_with_send_retry_0
)
test_loop_pipe_resend = (
    _pipelining.test_mid_pipe_close_resends_the_unanswered_gets_on_a_new_connection
)
test_loop_pipe_mixed = _pipelining.test_mixed_get_and_post_all_correct_and_post_sent_once_alone
test_loop_pipe_bound = _pipelining.test_never_more_than_pipeline_requests_outstanding
test_loop_pipe_16 = _pipelining.test_pipeline_16_against_the_embedded_server
test_loop_pipe_post_alone = _pipelining.test_post_waits_for_an_empty_pipe_and_goes_alone
test_loop_pipe_timeout = (
    _pipelining.test_request_timeout_inside_the_pipe_closes_and_resends_the_rest
)
test_loop_pipe_order = _pipelining.test_requests_are_written_ahead_and_answers_matched_in_order
test_loop_stream_pieces = _streaming.test_iter_bytes_yields_bounded_pieces
test_loop_stream_read = _streaming.test_read_returns_the_whole_body
test_loop_stream_trailers = _streaming.test_chunked_body_exposes_trailers
test_loop_stream_keep = _streaming.test_reading_to_the_end_keeps_the_connection_alive
test_loop_stream_keep_wire = (
    _streaming.test_reading_to_the_end_keeps_the_connection_alive_on_the_wire
)
test_loop_stream_close = _streaming.test_closing_early_closes_the_connection
test_loop_stream_behind = _streaming.test_requests_queued_behind_a_stream_wait_for_it
test_loop_stream_behind_quiet = (
    _streaming.test_request_queued_behind_a_stream_is_not_sent_while_it_is_open
)
test_loop_stream_behind_closed = (
    _streaming.test_request_queued_behind_a_stream_closed_early_goes_on_a_new_connection
)
test_loop_stream_truncated = _streaming.test_truncated_streamed_body_is_a_protocol_error
test_loop_stream_timeout = _streaming.test_stream_timeout_while_the_consumer_is_slow
test_loop_stream_stray = (
    _desync.test_a_streamed_response_followed_by_stray_bytes_closes_the_connection
)
test_loop_stream_slow_reader = (
    _hardening.test_a_streamed_body_is_read_only_as_fast_as_the_caller_consumes_it
)
test_loop_stream_max_body = _hardening.test_a_streamed_body_over_max_body_size_fails_the_stream
test_loop_stream_blocking_behind = (
    _stop.test_a_blocking_request_never_uses_the_connection_of_a_body_still_streaming
)
test_loop_stream_abort = _stop.test_an_abort_during_a_stream_ends_the_actor

# Made engine-agnostic (socket and TLS read through tests.helpers; engine-specific
# expectations explicit). Interop's idle-close and careless-HEAD run under
# FUSCO_ACTOR_ENGINE=loop only: their servers are too slow to start twice here.
test_loop_nodelay_default = _connect_options.test_tcp_nodelay_is_on_by_default
test_loop_nodelay_false = _connect_options.test_tcp_nodelay_false_leaves_nagle_on
test_loop_sockopts = _connect_options.test_sockopts_are_set_on_the_connection
test_loop_proxy_sockopts = _connect_options.test_sockopts_and_nodelay_apply_to_the_proxy_connection
test_loop_family = _connect_options.test_family_selects_the_address_family
test_loop_tls_tickets = (
    _tls.test_a_request_after_connect_reuses_the_tls_connection_despite_session_tickets
)
test_loop_tls13_alert = _tls.test_a_tls13_certificate_required_alert_is_a_tls_error
test_loop_tls_socket = _tls.test_tls_sockets_are_what_the_client_holds
test_loop_fd_above_1023 = (
    _hardening.test_keep_alive_is_reused_when_the_socket_descriptor_is_above_1023
)
test_loop_blocking_order = (
    _blocking.test_blocking_request_never_overtakes_a_call_taken_but_not_yet_served
)
test_loop_callback_blocks = (
    _stop.test_a_done_callback_may_make_a_blocking_request_on_the_same_client
)
test_loop_resend_deadline = _stop.test_a_resend_whose_deadline_passed_fails_without_reconnecting
test_loop_pool_stop_hung = _stop.test_pool_stop_with_hung_requests_returns_within_its_timeout
test_loop_supervisor_stop_hung = (
    _stop.test_supervisor_stop_with_hung_requests_stops_children_in_parallel
)
test_loop_late_cancel = _async.test_a_late_cancel_never_cuts_the_next_request
test_loop_pool_leaks = _pool.test_a_stopped_pool_leaves_no_thread_or_socket_behind
