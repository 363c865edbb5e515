"""GET /metrics from agentws-demo, parsed with prometheus_client (Debian python3-prometheus-client)."""

import urllib.error
import urllib.request
from typing import Dict, Optional, Tuple

from helpers import HOST, t

Samples = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]


def http_get(port: int, path: str, token: Optional[str] = None, method: str = "GET") -> Tuple[int, Dict[str, str], bytes]:
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=t(5)) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def scrape(port: int, token: Optional[str] = None) -> Tuple[str, Samples, dict]:
    """The /metrics text, every sample by (name, labels) and the families by name."""
    status, headers, body = http_get(port, "/metrics", token)
    assert status == 200, (status, body[:200])
    assert headers.get("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode("utf-8")
    samples: Samples = {}
    families = {}
    from prometheus_client import parser  # only the tests that scrape need it

    for fam in parser.text_string_to_metric_families(text):
        families[fam.name] = fam
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return text, samples, families


def v(samples: Samples, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"no sample {name}{labels}"
    return samples[key]


