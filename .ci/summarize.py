"""Counts results from meson test logs, pytest junit files and plain
"name PASS|FAIL" lists, and prints one line: N passed, N failed."""
import argparse
import json
import os
import sys
import xml.etree.ElementTree as ET


def junit_counts(path):
    passed = failed = skipped = 0
    if not os.path.exists(path):
        return None
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--meson", action="append", default=[])
    ap.add_argument("--junit", action="append", default=[])
    ap.add_argument("--plain", action="append", default=[])
    a = ap.parse_args()
    passed = failed = skipped = 0
    for log in a.meson:
        if not os.path.exists(log):
            print(f"missing meson log {log}", file=sys.stderr)
            failed += 1
            continue
        builddir = os.path.dirname(os.path.dirname(log))
        for line in open(log):
            t = json.loads(line)
            junit = os.path.join(builddir, "test", "e2e-junit.xml")
            # meson names tests "project:suite / name"
            if t["name"].split(" / ")[-1] == "e2e" and os.path.exists(junit):
                p, f, s = junit_counts(junit)
                passed, failed, skipped = passed + p, failed + f, skipped + s
                if t["result"] not in ("OK", "SKIP") and f == 0:
                    failed += 1
                continue
            if t["result"] == "OK":
                passed += 1
            elif t["result"] == "SKIP":
                skipped += 1
            else:
                failed += 1
    for path in a.junit:
        c = junit_counts(path)
        if c is None:
            failed += 1
            continue
        passed, failed, skipped = passed + c[0], failed + c[1], skipped + c[2]
    for path in a.plain:
        if not os.path.exists(path):
            failed += 1
            continue
        for line in open(path):
            if line.strip().endswith("PASS"):
                passed += 1
            elif line.strip():
                failed += 1
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
