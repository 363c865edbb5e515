#!/usr/bin/python3
"""ABI gate, symbol part (STYLE.md rule 23a).

usage: check-symbols.py include/agentws.h lib/libagentws.map libagentws.so

Checks that three lists of exported functions are the same set:
  1. the functions declared with AGENTWS_EXTERN in the public header;
  2. the names in the global: sections of the linker version script;
  3. the symbols `nm -D --defined-only` finds in the built shared library
     (the version node symbols such as AGENTWS_0.1 excepted);
and that every name starts with "agentws_", that no function prototype in
the header lacks AGENTWS_EXTERN, that the version script lists explicit
names only (no wildcards in global:), that every exported symbol carries a
version node from the script, and that the SONAME is libagentws.so.0.

Exits 0 when all hold, 1 with a report otherwise (2: could not run).
"""

import os
import re
import shutil
import subprocess
import sys

PREFIX = "agentws_"
SONAME = "libagentws.so.0"


def strip_c_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def strip_preprocessor(text):
    """Drops preprocessor directives, including continued lines."""
    out, cont = [], False
    for line in text.splitlines():
        directive = cont or line.lstrip().startswith("#")
        cont = directive and line.rstrip().endswith("\\")
        if not directive:
            out.append(line)
    return "\n".join(out)


DEPRECATED = re.compile(r'AGENTWS_DEPRECATED\s*\((?:[^()"]|"[^"]*")*\)')


def header_functions(path):
    """Returns (exported, all_prototypes): sets of function names."""
    with open(path, encoding="utf-8") as f:
        text = strip_preprocessor(strip_c_comments(f.read()))
    text = DEPRECATED.sub(" ", text)
    exported, protos = set(), set()
    # Top-level declarations end at ';' (the header has no function bodies).
    for decl in text.split(";"):
        decl = " ".join(decl.split())
        if "typedef" in decl.split():
            continue  # callback typedefs: (*agentws_x_cb)(...)
        m = re.search(r"\b(agentws_\w+)\s*\(", decl)
        if m is None:
            continue
        protos.add(m.group(1))
        if re.search(r"\bAGENTWS_EXTERN\b", decl):
            exported.add(m.group(1))
    return exported, protos


def map_symbols(path):
    """Returns (names, nodes, problems) from a GNU ld version script."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = strip_c_comments(text)
    text = re.sub(r"#[^\n]*", " ", text)
    names, nodes, problems, seen = set(), [], [], {}
    for node, body in re.findall(r"([A-Za-z_][\w.]*)\s*\{(.*?)\}\s*[\w.]*\s*;",
                                 text, flags=re.S):
        nodes.append(node)
        scope = None
        for tok in re.split(r"(\bglobal\s*:|\blocal\s*:|;)", body):
            tok = tok.strip()
            if not tok or tok == ";":
                continue
            if re.fullmatch(r"global\s*:", tok):
                scope = "global"
                continue
            if re.fullmatch(r"local\s*:", tok):
                scope = "local"
                continue
            if scope == "global":
                if any(c in tok for c in "*?[]"):
                    problems.append(f"{path}: wildcard {tok!r} in {node} "
                                    "global: (list explicit names)")
                    continue
                if tok in seen:
                    problems.append(f"{path}: {tok} listed in both "
                                    f"{seen[tok]} and {node}")
                seen[tok] = node
                names.add(tok)
    if not nodes:
        problems.append(f"{path}: no version node found")
    return names, nodes, problems


def find_tool(*names):
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    return None


def library_symbols(path, nodes):
    """Returns (functions, problems) exported by the shared library."""
    nm = find_tool(os.environ.get("NM", "nm"), "nm")
    if nm is None:
        print("check-symbols: nm not found", file=sys.stderr)
        sys.exit(2)
    out = subprocess.run([nm, "-D", "--defined-only", path], check=True,
                         capture_output=True, text=True).stdout
    funcs, problems = set(), []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        kind, full = parts[-2], parts[-1]
        name, _, version = full.partition("@")
        version = version.lstrip("@")
        if kind == "A" and name in nodes:
            continue  # the version node itself
        if kind not in ("T", "t", "i"):
            problems.append(f"{path}: exports non-function {name} "
                            f"(type {kind})")
        if version and version not in nodes:
            problems.append(f"{path}: {name} has version {version}, "
                            "not a node of the version script")
        funcs.add(name)
    # Without version info in nm's output, ask readelf which are versioned.
    if "@" not in out:
        readelf = find_tool("readelf")
        if readelf:
            dyn = subprocess.run([readelf, "--dyn-syms", "-W", path],
                                 check=True, capture_output=True,
                                 text=True).stdout
            for name in funcs:
                if not re.search(rf"\b{re.escape(name)}@@?[\w.]+", dyn):
                    problems.append(f"{path}: {name} is not versioned")
    return funcs, problems


def soname(path):
    objdump = find_tool(os.environ.get("OBJDUMP", "objdump"), "objdump")
    if objdump:
        out = subprocess.run([objdump, "-p", path], check=True,
                             capture_output=True, text=True).stdout
        m = re.search(r"^\s*SONAME\s+(\S+)", out, flags=re.M)
        return m.group(1) if m else None
    readelf = find_tool("readelf")
    if readelf:
        out = subprocess.run([readelf, "-d", "-W", path], check=True,
                             capture_output=True, text=True).stdout
        m = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", out)
        return m.group(1) if m else None
    print("check-symbols: neither objdump nor readelf found", file=sys.stderr)
    sys.exit(2)


def diff(label_a, a, label_b, b):
    lines = []
    for n in sorted(a - b):
        lines.append(f"  in {label_a} but not in {label_b}: {n}")
    for n in sorted(b - a):
        lines.append(f"  in {label_b} but not in {label_a}: {n}")
    return lines


def main(argv):
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    header, mapfile, lib = argv[1:]
    problems = []

    exported, protos = header_functions(header)
    mapped, nodes, p = map_symbols(mapfile)
    problems += p
    built, p = library_symbols(lib, nodes)
    problems += p

    if not exported:
        problems.append(f"{header}: no AGENTWS_EXTERN function found")
    for n in sorted(protos - exported):
        problems.append(f"{header}: {n} is declared without AGENTWS_EXTERN")
    for label, names in (("header", exported), ("map", mapped),
                         ("library", built)):
        for n in sorted(names):
            if not n.startswith(PREFIX) or n.startswith("agentws__"):
                problems.append(f"{label}: {n} lacks the {PREFIX} prefix "
                                "(or is internal)")
    d = (diff("header", exported, "map", mapped) +
         diff("map", mapped, "library", built) +
         diff("header", exported, "library", built))
    if d:
        problems.append("the symbol lists differ:")
        problems += sorted(set(d))

    so = soname(lib)
    if so != SONAME:
        problems.append(f"{lib}: SONAME is {so!r}, expected {SONAME!r}")

    if problems:
        print("ABI symbol check FAILED:")
        for line in problems:
            print(line)
        return 1
    print(f"ABI symbol check OK: {len(exported)} functions in header, "
          f"map ({', '.join(nodes)}) and library; SONAME {so}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
