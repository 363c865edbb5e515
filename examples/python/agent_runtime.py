#!/usr/bin/python3
"""A demo agent runtime on libagentws: a thread pool runs simulated agents
for many users at once and streams every run to its user's open tabs.

    agent_runtime.py [--host 127.0.0.1] [--port 8080] [--workers 4]
                     [--dev-insecure | --jwt-hs256-secret-file F]
                     [--agents 2] [--thinking-delay-ms 30] [--queue 64]
                     [--validation off|warn|strict|repair]

Prints `listening on HOST:PORT` once clients can connect. A client message
{"type":"user_message","text":T} starts --agents runs for its user (a
"researcher" and a "writer" by default), each on a pool thread: agent_started,
agent_thinking deltas, tool_executing, tool_completed, more deltas,
agent_completed. A full queue answers {"type":"error","code":"busy"}.

Ctrl-C or SIGTERM: no new runs; runs in progress end with agent_error
{code:"shutdown"}; the pool's threads are joined; then the manager closes
gracefully, so every client gets close 1001; exit 0.

    /usr/bin/python3 examples/python/agent_runtime.py --dev-insecure &
    /usr/bin/python3 examples/agent-client.py --user alice "hello"
"""

import argparse
import concurrent.futures
import itertools
import json
import logging
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agentws  # noqa: E402  (beside this file)

log = logging.getLogger("agent_runtime")
AGENTS = ("researcher", "writer", "critic", "planner")


class Runtime:
    """Runs simulated agents on a thread pool and streams them."""

    def __init__(self, args):
        self.args = args
        self.stopping = threading.Event()   # set: runs end early
        self.pool = concurrent.futures.ThreadPoolExecutor(
            args.workers, thread_name_prefix="agent")
        self.slots = threading.BoundedSemaphore(args.queue)  # queued + running
        self.run_ids = itertools.count(1)
        self.done = {"completed": 0, "interrupted": 0, "failed": 0}
        self.lock = threading.Lock()
        options = dict(ping_interval_ms=30000, validation=args.validation,
                       on_client_message=self.on_client_message,
                       on_log=agentws.log_to_logging)
        if args.jwt_hs256_secret_file:
            with open(args.jwt_hs256_secret_file, "rb") as f:
                options["jwt_hs256_secret"] = f.read().strip()
        else:
            options["dev_insecure"] = args.dev_insecure
        # start=False: the handlers use self.m, so it must exist first.
        self.m = agentws.Manager(args.host, args.port, start=False, **options)
        self.m.start()

    # ---- the library's thread: keep it quick, hand work to the pool
    def on_client_message(self, conn, user, msg):
        if msg["type"] != "user_message":
            return self.reply_error(conn, "bad_message",
                                    f"unknown type {msg['type']!r}")
        text = msg.get("text")
        if not isinstance(text, str):
            return self.reply_error(conn, "bad_field", "text must be a string")
        for agent in AGENTS[:self.args.agents]:
            if self.stopping.is_set() or not self.slots.acquire(blocking=False):
                return self.reply_error(conn, "busy", "too many runs waiting")
            run_id = f"r-{next(self.run_ids)}"
            try:
                self.pool.submit(self.run_agent, user, run_id, agent, text)
            except RuntimeError:  # the pool shut down meanwhile
                self.slots.release()
                return self.reply_error(conn, "busy", "shutting down")

    def reply_error(self, conn, code, message):
        self.m.send(conn, json.dumps(
            {"type": "error", "code": code, "message": message}))

    # ---- pool threads
    def run_agent(self, user, run_id, agent, text):
        m, t0 = self.m, time.monotonic()
        outcome, call = "failed", None
        try:
            m.agent_started(run_id, agent, user=user, data={"input": text})
            reply = [f"{agent}: looking into ", f"“{text}”", " … "]
            more = ["found it. ", 'Quotes "and" \\ survive.']
            going = self.think(run_id, user, reply)
            if going:
                call = f"c-{run_id}"
                m.tool_executing(run_id, "web_search", call, {"q": text},
                                 user=user)
                going = self.pause()
            if going:
                m.tool_completed(run_id, "web_search", call, True,
                                 self.args.thinking_delay_ms,
                                 {"hits": len(text) % 7 + 1}, user=user)
                call = None
                going = self.think(run_id, user, more)
            if going:
                m.agent_completed(run_id, int((time.monotonic() - t0) * 1000),
                                  {"text": "".join(reply + more)}, user=user)
                outcome = "completed"
            else:
                # Stopping mid-run: end it visibly, so no client waits on a
                # spinner for a run that will never finish.
                if call is not None:
                    m.tool_completed(run_id, "web_search", call, False, 0,
                                     {"code": "shutdown"}, user=user)
                m.agent_error(run_id, "shutdown", "the runtime is stopping",
                              "warning", True, user=user)
                outcome = "interrupted"
        except agentws.AgentwsError as e:
            log.warning("run %s of %s: %s", run_id, user, e)
        finally:
            self.slots.release()
            with self.lock:
                self.done[outcome] += 1

    def think(self, run_id, user, deltas):
        for delta in deltas:
            if not self.pause():
                return False
            self.m.agent_thinking(run_id, delta, user=user)
        return True

    def pause(self):
        """Waits one thinking delay; False once the runtime is stopping."""
        return not self.stopping.wait(self.args.thinking_delay_ms / 1000)

    # ---- main thread
    def shutdown(self):
        self.stopping.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.m.close()  # every client gets 1001 "server shutdown"
        log.info("stopped: %s", self.done)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--agents", type=int, default=2,
                   choices=range(1, len(AGENTS) + 1))
    p.add_argument("--queue", type=int, default=64)
    p.add_argument("--thinking-delay-ms", type=int, default=30)
    p.add_argument("--validation", default="warn",
                   choices=sorted(agentws.VALIDATION))
    auth = p.add_mutually_exclusive_group(required=True)
    auth.add_argument("--dev-insecure", action="store_true",
                      help="INSECURE: the user id comes from ?user=")
    auth.add_argument("--jwt-hs256-secret-file")
    p.add_argument("--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        runtime = Runtime(args)
    except (agentws.AgentwsError, OSError) as e:
        print(f"agent_runtime: {e}", file=sys.stderr)
        return 1
    print(f"listening on {args.host}:{runtime.m.port}", flush=True)
    while not stop.wait(0.5):
        pass
    runtime.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
