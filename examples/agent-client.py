#!/usr/bin/python3
"""A minimal agentws.v1 client: connects as a user, sends one message to the
demo's simulated agent and prints the run's events as they stream in.

  /usr/bin/python3 examples/agent-client.py [--port 8080] [--user alice] TEXT

Needs python3-websockets (Debian). The demo must run with --dev-insecure
(the user id comes from ?user=; real deployments use a token)."""
import argparse
import asyncio
import json

import websockets


async def main(a):
    url = f"ws://{a.host}:{a.port}/ws?user={a.user}"
    async with websockets.connect(url, subprotocols=["agentws.v1"]) as ws:
        welcome = json.loads(await ws.recv())
        print(f"welcome: user={welcome['user']} epoch={welcome['epoch']} "
              f"seq={welcome['seq']}")
        await ws.send(json.dumps({"type": "user_message", "text": a.text}))
        while True:
            ev = json.loads(await asyncio.wait_for(ws.recv(), 30))
            data = ev.get("data", {})
            if ev["type"] == "agent_thinking":
                print(data["text"], end="", flush=True)
                continue
            print(f"\n[{ev.get('seq')}] {ev['type']} {json.dumps(data)[:100]}")
            if ev["type"] in ("agent_completed", "agent_error"):
                return


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--user", default="alice")
    p.add_argument("text", nargs="?", default="What is libuv?")
    asyncio.run(main(p.parse_args()))
