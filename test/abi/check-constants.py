#!/usr/bin/python3
"""ABI gate, constants part (README.md "ABI promise").

usage: check-constants.py dump  OUT.constants      HEADER [-I DIR]...
       check-constants.py check BASELINE.constants HEADER [-I DIR]...

The public header's enumerations are mostly object-like macros
(AGENTWS_CLOSE_*, AGENTWS_RULE_*, AGENTWS_STAT_*, ...) plus enum
agentws_error, and they travel through the API as int. None of that is in
the library's DWARF through a function signature, so abidiff cannot see a
renumbered constant (checked: AGENTWS_ERR_TOO_BIG -1008 -> -1099 passed
abidiff). This check records them instead:

  * every object-like AGENTWS_* macro with a non-empty value, as the C
    preprocessor sees it ($CC -E -dM, with the -I directories given),
    except AGENTWS_VERSION_* (they change with every release by design);
  * every AGENTWS_* enumerator of the preprocessed header, with its value
    (explicit, or the previous one + 1).

Integer values are compared as numbers (0x10 == 16), others as token text.

dump   writes NAME VALUE lines to OUT.constants.
check  fails when a constant of BASELINE.constants is missing or has a
       different value; new constants are additions and pass (listed).

Exits 0 on pass, 1 on failure, 2 on bad usage or when the preprocessor
fails.
"""

import os
import re
import shlex
import subprocess
import sys

PREFIX = "AGENTWS_"
EXCLUDE = re.compile(r"^AGENTWS_VERSION_")
INT = re.compile(r"^\(*\s*([-+]?)\s*(0[xX][0-9a-fA-F]+|[0-9]+)[uUlL]*\s*\)*$")


def normalize(value):
    """An int for an integer literal (optionally signed/parenthesized),
    else the whitespace-normalized text."""
    value = " ".join(value.split())
    m = INT.match(value)
    if m and value.count("(") == value.count(")"):
        n = int(m.group(2), 0)
        return -n if m.group(1) == "-" else n
    return value


def preprocess(header, includes, extra):
    cc = shlex.split(os.environ.get("CC", "cc"))
    cmd = cc + ["-E"] + extra + [f"-I{d}" for d in includes] + [header]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"check-constants: {' '.join(cmd)} failed:\n{r.stderr}",
              file=sys.stderr)
        sys.exit(2)
    return r.stdout


def macros(header, includes):
    out = {}
    for line in preprocess(header, includes, ["-dM"]).splitlines():
        m = re.match(r"#define\s+(" + PREFIX + r"\w*)(\(?)\s*(.*)$", line)
        if not m or m.group(2) or EXCLUDE.match(m.group(1)):
            continue  # not ours, function-like, or a version macro
        if m.group(3).strip():
            out[m.group(1)] = normalize(m.group(3))
    return out


def enumerators(header, includes):
    text = preprocess(header, includes, ["-P"])
    out = {}
    for body in re.findall(r"\benum\b\s*\w*\s*\{(.*?)\}", text, flags=re.S):
        nxt = 0
        for item in body.split(","):
            item = item.strip()
            if not item:
                continue
            name, _, value = item.partition("=")
            name = name.strip()
            value = normalize(value) if value.strip() else nxt
            if isinstance(value, int):
                nxt = value + 1
            if name.startswith(PREFIX):
                out[name] = value
    return out


def constants(header, includes):
    found = macros(header, includes)
    for name, value in enumerators(header, includes).items():
        found[name] = value
    if not found:
        print(f"check-constants: no {PREFIX}* constant in {header}",
              file=sys.stderr)
        sys.exit(2)
    return found


def read_baseline(path):
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, value = line.partition(" ")
                out[name] = normalize(value)
    return out


def parse_args(argv):
    if len(argv) < 4 or argv[1] not in ("dump", "check"):
        return None
    includes, rest = [], argv[4:]
    while rest:
        if rest[0] == "-I" and len(rest) > 1:
            includes.append(rest[1])
            rest = rest[2:]
        elif rest[0].startswith("-I") and len(rest[0]) > 2:
            includes.append(rest[0][2:])
            rest = rest[1:]
        else:
            return None
    return argv[1], argv[2], argv[3], includes


def main(argv):
    args = parse_args(argv)
    if args is None:
        print("\n".join(__doc__.strip().splitlines()[2:4]), file=sys.stderr)
        return 2
    mode, path, header, includes = args
    found = constants(header, includes)
    if mode == "dump":
        with open(path, "w", encoding="utf-8") as f:
            f.write("# Public constants of include/agentws.h: NAME VALUE.\n"
                    "# Written by test/abi/update-baseline.sh "
                    "(check-constants.py dump); do not edit.\n")
            for name in sorted(found):
                f.write(f"{name} {found[name]}\n")
        print(f"wrote {path}: {len(found)} constants")
        return 0
    if not os.path.isfile(path):
        print(f"constants check FAILED: no baseline {path} "
              "(record it with test/abi/update-baseline.sh)")
        return 1
    base = read_baseline(path)
    problems = []
    for name in sorted(base):
        if name not in found:
            problems.append(f"  removed: {name} (was {base[name]})")
        elif found[name] != base[name]:
            problems.append(f"  changed: {name} {base[name]} -> {found[name]}")
    added = sorted(set(found) - set(base))
    for name in added:
        print(f"  added: {name} {found[name]}")
    if problems:
        print(f"constants check FAILED against {os.path.basename(path)}: "
              "a shipped constant keeps its name and value within SONAME "
              "libagentws.so.0 (STYLE.md rule 7; README.md 'ABI promise'):")
        print("\n".join(problems))
        return 1
    print(f"constants check OK: {len(base)} constants unchanged"
          + (f", {len(added)} added" if added else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
