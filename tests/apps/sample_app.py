"""A small function app that uses every trigger the local host supports, for its tests."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
seen: list[dict[str, Any]] = []
# What `slow_message` observed: invocations running now, the most at once, and those finished.
slow = {"running": 0, "peak": 0, "done": 0}
# What `slow_request` observed, the same way.
slow_http = {"running": 0, "peak": 0}
_slow_lock = threading.Lock()


def reset() -> None:
    seen.clear()
    with _slow_lock:
        slow.update(running=0, peak=0, done=0)
        slow_http.update(running=0, peak=0)


@app.route(route="items/{id:int}", methods=["GET"])
def get_item(req: func.HttpRequest) -> func.HttpResponse:
    body = {"route": dict(req.route_params), "query": dict(req.params), "method": req.method}
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.route(route="items/{name}/notes/{note?}", methods=["GET", "POST"])
def item_notes(req: func.HttpRequest) -> func.HttpResponse:
    body = {"route": dict(req.route_params), "body": req.get_body().decode()}
    return func.HttpResponse(json.dumps(body), status_code=201, headers={"X-Sample": "yes"})


@app.route(route="files/{*path}")
def files(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.route_params.get("path", ""))


@app.route(route="boom", methods=["GET"])
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("the function failed")


@app.route(route="slow", methods=["GET"])
def slow_request(req: func.HttpRequest) -> func.HttpResponse:
    """Takes `?seconds=` (0.3 by default), counting how many run at once."""
    with _slow_lock:
        slow_http["running"] += 1
        slow_http["peak"] = max(slow_http["peak"], slow_http["running"])
    try:
        time.sleep(float(req.params.get("seconds") or 0.3))
    finally:
        with _slow_lock:
            slow_http["running"] -= 1
    return func.HttpResponse("done")


@app.route(route="pid", methods=["GET"])
def process_id(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(str(os.getpid()))


@app.route(route="async-hello", methods=["GET"])
async def async_hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("hello")


@app.queue_trigger(arg_name="msg", queue_name="%SAMPLE_QUEUE%", connection="AzureWebJobsStorage")
def on_message(msg: func.QueueMessage, context: func.Context) -> None:
    body = msg.get_body()
    seen.append(
        {
            "kind": "queue",
            "body": body,
            "dequeue_count": msg.dequeue_count,
            "function": context.function_name,
        }
    )
    if body == b"fail":
        raise RuntimeError("this message always fails")


@app.queue_trigger(
    arg_name="msg", queue_name="%SAMPLE_SLOW_QUEUE%", connection="AzureWebJobsStorage"
)
def slow_message(msg: func.QueueMessage) -> None:
    """Takes the message's body in seconds (0.5 when empty), counting how many run at once."""
    with _slow_lock:
        slow["running"] += 1
        slow["peak"] = max(slow["peak"], slow["running"])
    try:
        time.sleep(float(msg.get_body() or 0.5))
    finally:
        with _slow_lock:
            slow["running"] -= 1
            slow["done"] += 1


@app.timer_trigger(schedule="%SAMPLE_SCHEDULE%", arg_name="timer", run_on_startup=False)
def every_second(timer: func.TimerRequest) -> None:
    status = getattr(timer, "schedule_status", {})  # the host's TimerRequest carries it
    seen.append({"kind": "timer", "past_due": timer.past_due, "status": status})
