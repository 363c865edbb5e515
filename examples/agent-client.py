#!/usr/bin/python3
"""A minimal agentws.v1 client: connects as a user, sends one message to the
demo's simulated agent and prints the run's events as they stream in.

  /usr/bin/python3 examples/agent-client.py [--port 8080] [--user alice] TEXT
  /usr/bin/python3 examples/agent-client.py --token JWT TEXT

Needs python3-websockets (Debian). With --user the demo must run with
--dev-insecure (the user id comes from ?user=); with --token (a JWT the demo's
--jwt-* keys verify) the token goes in a "bearer.<token>" subprotocol entry,
as a browser would send it."""
import argparse
import asyncio
import json

import websockets


async def main(a):
    protos = ["agentws.v1"]
    if a.token:
        url = f"ws://{a.host}:{a.port}/ws"
        protos.append("bearer." + a.token)
    else:
        url = f"ws://{a.host}:{a.port}/ws?user={a.user}"
    async with websockets.connect(url, subprotocols=protos) as ws:
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
    p.add_argument("--token", help="a JWT instead of the dev-mode ?user=")
    p.add_argument("text", nargs="?", default="What is libuv?")
    asyncio.run(main(p.parse_args()))
