"""The local Functions host serves an app the way the real host does, over real HTTP and Azurite."""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from localdev.azurite import REPO_ROOT
from localdev.host import (
    HostConfig,
    HostError,
    LocalHost,
    QueueListener,
    _route_regex,
    resolve_setting_refs,
    thread_count,
    worker_process_count,
)
from tests.apps import sample_app

pytestmark = pytest.mark.integration

HOST_JSON: dict[str, Any] = {
    "version": "2.0",
    "extensions": {
        "http": {"routePrefix": "api"},
        "queues": {
            "maxDequeueCount": 3,
            "visibilityTimeout": "00:00:00",
            "maxPollingInterval": "00:00:00.5",
            "messageEncoding": "base64",
        },
    },
}


@pytest.fixture
def make_host(tmp_path, azurite, monkeypatch):
    """Start a host for the sample app, with `queues` settings added to host.json."""
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("SAMPLE_QUEUE", f"sample-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("SAMPLE_SLOW_QUEUE", f"slow-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("SAMPLE_SCHEDULE", "* * * * * *")
    sample_app.reset()
    started: list[LocalHost] = []

    def make(**queues):
        host_json = copy.deepcopy(HOST_JSON)
        host_json["extensions"]["queues"].update(queues)
        (tmp_path / "host.json").write_text(json.dumps(host_json))
        instance = LocalHost(script_root=tmp_path, app_module="tests.apps.sample_app", port=0)
        started.append(instance)
        return instance.start()

    yield make
    for instance in started:
        instance.stop()


@pytest.fixture
def host(make_host):
    return make_host()


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def queue_client(azurite, name, encoded=True) -> QueueClient:
    return QueueClient.from_connection_string(
        azurite.connection_string,
        name,
        message_encode_policy=TextBase64EncodePolicy() if encoded else None,
    )


def listener(host: LocalHost, function_name: str) -> QueueListener:
    return next(q for q in host.queues if q.function.name == function_name)


def fill_slow_queue(azurite, bodies: list[str]) -> QueueClient:
    """Put messages on the slow queue before a host starts, so its first receive sees them all.
    A body is how many seconds `slow_message` takes over it."""
    queue = queue_client(azurite, os.environ["SAMPLE_SLOW_QUEUE"])
    queue.create_queue()
    for body in bodies:
        queue.send_message(body)
    return queue


# -- HTTP ---------------------------------------------------------------------------------------


def test_route_parameters_and_query_reach_the_function(host):
    response = requests.get(f"{host.base_url}/api/items/42?verbose=1", timeout=5)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"route": {"id": "42"}, "query": {"verbose": "1"}, "method": "GET"}


def test_a_constraint_that_does_not_match_is_a_404(host):
    assert requests.get(f"{host.base_url}/api/items/forty-two", timeout=5).status_code == 404


def test_a_method_the_function_does_not_accept_is_a_404(host):
    assert requests.delete(f"{host.base_url}/api/items/42", timeout=5).status_code == 404


def test_optional_parameters_body_status_and_headers(host):
    with_note = requests.post(f"{host.base_url}/api/items/pen/notes/n1", data=b"hi", timeout=5)
    without = requests.get(f"{host.base_url}/api/items/pen/notes", timeout=5)

    assert with_note.status_code == 201
    assert with_note.headers["X-Sample"] == "yes"
    assert with_note.json() == {"route": {"name": "pen", "note": "n1"}, "body": "hi"}
    assert without.json()["route"] == {"name": "pen"}


def test_route_values_are_percent_decoded(host):
    response = requests.get(f"{host.base_url}/api/items/pen%20case/notes/n%231", timeout=5)

    assert response.json()["route"] == {"name": "pen case", "note": "n#1"}


def test_catch_all_parameters_take_the_rest_of_the_path(host):
    assert requests.get(f"{host.base_url}/api/files/a/b/c.txt", timeout=5).text == "a/b/c.txt"


def test_routes_match_case_insensitively_like_the_host(host):
    assert requests.get(f"{host.base_url}/API/Items/7", timeout=5).status_code == 200


def test_a_failing_function_is_a_500(host):
    assert requests.get(f"{host.base_url}/api/boom", timeout=5).status_code == 500


def test_async_functions_are_awaited(host):
    assert requests.get(f"{host.base_url}/api/async-hello", timeout=5).text == "hello"


def test_unknown_paths_are_404_with_the_apps_error_body(host):
    response = requests.get(f"{host.base_url}/api/nothing/here", timeout=5)

    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"error": "No route GET /api/nothing/here", "code": "not_found"}


# -- queues -------------------------------------------------------------------------------------


def test_a_burst_of_64_concurrent_clients_meets_no_connection_reset(host):
    # GIVEN 64 clients that connect at the same moment (the default listen backlog is 5)
    start = threading.Barrier(64)
    failures: list[str] = []
    statuses: list[int] = []

    def client(n: int) -> None:
        start.wait(timeout=10)
        try:
            response = requests.post(f"{host.base_url}/api/items/n{n}/notes", data=b"x", timeout=30)
            statuses.append(response.status_code)
        except requests.RequestException as exc:
            failures.append(type(exc).__name__)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # THEN every one of them was answered
    assert failures == []
    assert statuses == [201] * 64


def test_a_base64_message_is_decoded_and_deleted_after_success(host, azurite):
    queue = queue_client(azurite, listener(host, "on_message").queue_name)

    queue.send_message("hello queue")

    assert wait_for(lambda: any(s["kind"] == "queue" for s in sample_app.seen))
    seen = next(s for s in sample_app.seen if s["kind"] == "queue")
    assert seen == {
        "kind": "queue",
        "body": b"hello queue",
        "dequeue_count": 1,
        "function": "on_message",
    }
    assert wait_for(lambda: queue.get_queue_properties().approximate_message_count == 0)


def test_a_failing_message_is_retried_then_moved_to_the_poison_queue(host, azurite):
    name = listener(host, "on_message").queue_name
    queue_client(azurite, name).send_message("fail")
    poison = queue_client(azurite, f"{name}-poison", encoded=False)

    assert wait_for(lambda: poison.get_queue_properties().approximate_message_count == 1)
    attempts = [s["dequeue_count"] for s in sample_app.seen if s["kind"] == "queue"]
    assert attempts == [1, 2, 3]
    (moved,) = list(poison.receive_messages())
    assert base64.b64decode(moved.content) == b"fail"
    assert queue_client(azurite, name).get_queue_properties().approximate_message_count == 0


def test_a_message_that_is_not_base64_never_reaches_the_function(host, azurite):
    name = listener(host, "on_message").queue_name
    queue_client(azurite, name, encoded=False).send_message("not base64!")
    poison = queue_client(azurite, f"{name}-poison", encoded=False)

    assert wait_for(lambda: poison.get_queue_properties().approximate_message_count == 1)
    assert [s for s in sample_app.seen if s["kind"] == "queue"] == []


def test_the_queue_name_comes_from_the_app_setting(host, monkeypatch):
    assert listener(host, "on_message").queue_name.startswith("sample-")


# -- queue concurrency ------------------------------------------------------------------------


def test_a_batch_of_messages_is_processed_concurrently(make_host, azurite):
    queue = fill_slow_queue(azurite, ["0.5"] * 16)

    host = make_host()

    assert wait_for(lambda: sample_app.slow["done"] == 16)
    assert sample_app.slow["peak"] > 1
    assert listener(host, "slow_message").peak_in_flight <= 16 + 8  # batchSize + threshold
    assert wait_for(lambda: queue.get_queue_properties().approximate_message_count == 0)


def test_the_next_batch_waits_until_in_flight_drops_to_new_batch_threshold(make_host, azurite):
    fill_slow_queue(azurite, ["0.2"] * 12)

    host = make_host(batchSize=4, newBatchThreshold=1)

    assert wait_for(lambda: sample_app.slow["done"] == 12)
    slow = listener(host, "slow_message")
    assert 2 <= sample_app.slow["peak"] <= 5
    assert slow.peak_in_flight <= 5
    assert slow.invocations == 12


def test_batch_size_one_processes_one_message_at_a_time(make_host, azurite):
    fill_slow_queue(azurite, ["0.1"] * 4)

    host = make_host(batchSize=1)

    assert wait_for(lambda: sample_app.slow["done"] == 4)
    assert sample_app.slow["peak"] == 1
    assert listener(host, "slow_message").peak_in_flight == 1


def test_failures_in_a_concurrent_batch_are_retried_each_on_its_own(host, azurite):
    name = listener(host, "on_message").queue_name
    queue = queue_client(azurite, name)
    for body in ["ok-1", "fail", "ok-2"]:
        queue.send_message(body)
    poison = queue_client(azurite, f"{name}-poison", encoded=False)

    assert wait_for(lambda: poison.get_queue_properties().approximate_message_count == 1)
    bodies = [s["body"] for s in sample_app.seen if s["kind"] == "queue"]
    assert sorted(bodies) == [b"fail", b"fail", b"fail", b"ok-1", b"ok-2"]
    assert wait_for(lambda: queue.get_queue_properties().approximate_message_count == 0)


def test_stop_lets_messages_in_flight_finish_and_ends_the_pools(make_host, azurite):
    fill_slow_queue(azurite, ["0.5"] * 3)
    host = make_host()
    assert wait_for(lambda: sample_app.slow["running"] == 3)

    host.stop()

    assert sample_app.slow == {"running": 0, "peak": 3, "done": 3}
    prefixes = tuple(f"queue:{q.queue_name}" for q in host.queues)
    assert not [t.name for t in threading.enumerate() if t.name.startswith(prefixes)]
    queue = queue_client(azurite, listener(host, "slow_message").queue_name)
    assert queue.get_queue_properties().approximate_message_count == 0


def test_new_batch_threshold_defaults_to_half_the_batch_size(tmp_path):
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {"queues": {"batchSize": 5}}}))

    config = HostConfig.load(tmp_path / "host.json")

    assert (config.batch_size, config.batch_threshold, config.max_in_flight) == (5, 2, 7)
    assert HostConfig().batch_threshold == 8


@pytest.mark.parametrize("queues", [{"batchSize": 0}, {"batchSize": 33}, {"newBatchThreshold": -1}])
def test_batch_settings_out_of_range_are_refused(tmp_path, queues):
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {"queues": queues}}))

    with pytest.raises(HostError):
        HostConfig.load(tmp_path / "host.json")


# -- timers -------------------------------------------------------------------------------------


def test_a_timer_fires_on_its_schedule(host):
    assert wait_for(lambda: sum(s["kind"] == "timer" for s in sample_app.seen) >= 2, timeout=5)
    fired = next(s for s in sample_app.seen if s["kind"] == "timer")
    assert fired["past_due"] is False
    assert "Next" in fired["status"]


def test_the_admin_endpoint_runs_a_timer_now(host, monkeypatch):
    before = sum(s["kind"] == "timer" for s in sample_app.seen)

    response = requests.post(f"{host.base_url}/admin/functions/every_second", json={}, timeout=5)

    # Locally the answer waits for the run (the real host answers at once).
    assert response.status_code == 202
    assert sum(s["kind"] == "timer" for s in sample_app.seen) > before


# -- concurrency: threads and worker processes ----------------------------------------------------


def test_http_functions_run_on_python_threadpool_thread_count_threads(make_host, monkeypatch):
    # GIVEN a host whose worker runs sync functions on 2 threads
    monkeypatch.setenv("PYTHON_THREADPOOL_THREAD_COUNT", "2")
    host = make_host()

    # WHEN 6 slow requests arrive at once
    with ThreadPoolExecutor(6) as pool:
        answers = list(
            pool.map(lambda _: requests.get(f"{host.base_url}/api/slow", timeout=30), range(6))
        )

    # THEN all are answered, never more than 2 running at once
    assert [a.status_code for a in answers] == [200] * 6
    assert sample_app.slow_http["peak"] == 2


def test_the_thread_count_defaults_to_the_workers_own(monkeypatch):
    monkeypatch.delenv("PYTHON_THREADPOOL_THREAD_COUNT", raising=False)

    assert thread_count() == min(32, (os.cpu_count() or 1) + 4)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FUNCTIONS_WORKER_PROCESS_COUNT", "0"),
        ("FUNCTIONS_WORKER_PROCESS_COUNT", "11"),
        ("FUNCTIONS_WORKER_PROCESS_COUNT", "two"),
        ("PYTHON_THREADPOOL_THREAD_COUNT", "33"),
    ],
)
def test_worker_settings_out_of_range_are_refused(monkeypatch, name, value):
    monkeypatch.setenv(name, value)

    read = worker_process_count if name.startswith("FUNCTIONS") else thread_count

    with pytest.raises(HostError, match=name):
        read()


def test_worker_processes_share_the_port_and_stop_with_the_host(tmp_path, azurite):
    # GIVEN the host started with two worker processes, as `python -m localdev.host` runs
    (tmp_path / "host.json").write_text(json.dumps(HOST_JSON))
    env = {
        **os.environ,
        "AzureWebJobsStorage": azurite.connection_string,
        "SAMPLE_QUEUE": f"sample-{uuid.uuid4().hex[:8]}",
        "SAMPLE_SLOW_QUEUE": f"slow-{uuid.uuid4().hex[:8]}",
        "SAMPLE_SCHEDULE": "0 0 0 1 1 *",
        "FUNCTIONS_WORKER_PROCESS_COUNT": "2",
        "PYTHONPATH": str(REPO_ROOT),
    }
    command = [sys.executable, "-m", "localdev.host", "--script-root", str(tmp_path)]
    command += ["--app", "tests.apps.sample_app", "--port", "0"]
    command += ["--settings-file", str(tmp_path / "none.json")]
    host = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert host.stdout is not None
        url = ""
        for line in host.stdout:
            if line.startswith("Host started on "):
                url = line.split()[-1]
                break
        assert url, "the host did not start"

        # WHEN requests arrive on new connections
        pids = set()
        for _ in range(200):
            pids.add(int(requests.get(f"{url}/api/pid", timeout=10).text))
            if len(pids) == 2:
                break

        # THEN both processes answer on the one port, the first being the host itself
        assert len(pids) == 2
        assert host.pid in pids
        (worker,) = pids - {host.pid}
    finally:
        # AND stopping the host stops its other worker process too
        host.terminate()
        host.wait(timeout=30)
    assert wait_for(lambda: not Path(f"/proc/{worker}").exists(), timeout=15)


# -- what the host refuses -------------------------------------------------------------------------


def test_missing_setting_names_are_reported(monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)

    with pytest.raises(HostError, match="NOT_SET_ANYWHERE"):
        resolve_setting_refs("%NOT_SET_ANYWHERE%")


def test_unsupported_route_syntax_is_refused():
    with pytest.raises(HostError):
        _route_regex("items/{id:regex(^a$)}")
    with pytest.raises(HostError):
        _route_regex("items/pre{id}")
