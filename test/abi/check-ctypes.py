#!/usr/bin/python3
"""ABI gate, ctypes part (STYLE.md rule 20).

usage: check-ctypes.py include/agentws.h

Parses the public header and fails if a public function (AGENTWS_EXTERN)
or a callback typedef breaks what makes the API ctypes-trivial:
  * no varargs, no struct or union passed or returned by value, no public
    struct/union layout (so no bit-fields), no enum as a parameter or
    return type (enums travel as int);
  * scalars only int, unsigned, size_t, double and the fixed-width
    intN_t/uintN_t: no long, ssize_t, short, char, bool, float or other
    typedefs by value;
  * function pointers only through typedef'd callbacks, every parameter
    named;
  * bytes that may contain NUL come with a length: every uint8_t* and every
    writable char* is followed by a size_t, and so are const char* named
    data, text, body, json, secret or pem; *_json parameters are const
    char* (JSON text never holds a raw NUL);
  * no returned writable char* (the caller could not know who frees it).
Before the header, it checks itself on declarations that break each rule.
Exits 0 when all hold, 1 with a report otherwise, 2 on bad usage.
"""

import re
import sys

SCALARS = {"int", "unsigned", "unsigned int", "size_t", "double"} | {
    f"{s}int{n}_t" for s in ("", "u") for n in (8, 16, 32, 64)}
BUFFER_NAMES = {"data", "text", "body", "json", "secret", "pem"}
EXTERN = "AGENTWS_EXTERN"


def _preprocess(text):
    """Drops comments, directives and the C++ guard blocks."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    out, depth, skip_at, cont = [], 0, None, False
    for line in text.splitlines():
        s = line.strip()
        directive = cont or s.startswith("#")
        cont = directive and s.endswith("\\")
        if directive:
            if re.match(r"#\s*if", s):
                depth += 1
                if skip_at is None and "__cplusplus" in s:
                    skip_at = depth
            elif re.match(r"#\s*endif", s):
                if skip_at == depth:
                    skip_at = None
                depth -= 1
            continue
        if skip_at is None:
            out.append(line)
    text = "\n".join(out)
    return re.sub(r'AGENTWS_DEPRECATED\s*\((?:[^()"]|"[^"]*")*\)', " ", text)


def _split_params(params):
    parts, depth, cur = [], 0, ""
    for ch in params:
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
            continue
        depth += (ch == "(") - (ch == ")")
        cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return [] if parts == ["void"] else parts


def _param(text):
    """'const char *name' -> ('const char *', 'name')."""
    m = re.fullmatch(r"(.*?)(\w+)\s*(\[\s*\w*\s*\])?", text.strip())
    if not m or not re.search(r"\w", m.group(1).replace("const", "")):
        return text.strip(), None  # unnamed (or the name is the type)
    ctype = m.group(1).strip() + (" *" if m.group(3) else "")
    return ctype, m.group(2)


def parse_header(text):
    """Returns (functions, callbacks, problems): functions and callbacks map
    a name to (return type, [(param type, param name)])."""
    text = _preprocess(text)
    problems = []
    for kind, name, body in re.findall(
            r"\b(struct|union|enum)\s*(\w*)\s*\{(.*?)\}", text, flags=re.S):
        if kind != "enum":
            bits = " with bit-fields" if re.search(r":\s*\d", body) else ""
            problems.append(f"public {kind} {name or '(anonymous)'} layout"
                            f"{bits}: use an opaque handle and accessors")
    text = re.sub(r"\b(struct|union|enum)\s*\w*\s*\{.*?\}", " ", text,
                  flags=re.S)
    functions, callbacks = {}, {}
    for decl in text.split(";"):
        decl = " ".join(decl.split())
        fp = re.fullmatch(r"typedef (.+?)\(\s*\*\s*(\w+)\s*\)\s*\((.*)\)", decl)
        fn = re.fullmatch(rf".*\b{EXTERN} (.+?)\b(\w+)\s*\((.*)\)", decl)
        target = callbacks if fp else functions if fn else None
        if target is not None:
            ret, name, params = (fp or fn).groups()
            target[name] = (ret.strip(), [_param(p) for p in
                                          _split_params(params)])
    return functions, callbacks, problems


def opaque_types(text):
    """Typedef'd and forward-declared structs: usable only as pointers."""
    text = _preprocess(text)
    names = set(re.findall(r"typedef\s+struct\s+\w+\s+(\w+)\s*;", text))
    names |= {"struct " + n
              for n in re.findall(r"\bstruct\s+(\w+)\s*;", text)}
    return names


def _type_problems(ctype, where, opaque, callbacks, is_return=False):
    tokens = ctype.replace("*", " * ").split()
    stars = tokens.count("*")
    words = [t for t in tokens if t not in ("const", "*", "volatile")]
    base = " ".join(words)
    if "..." in ctype:
        return [f"{where}: varargs"]
    if "(" in ctype:
        return [f"{where}: inline function pointer (typedef a callback)"]
    if "enum" in words:
        return [f"{where}: enum type '{ctype}' (pass int)"]
    for bad in ("long", "ssize_t", "bool", "_Bool"):
        if bad in words:
            return [f"{where}: '{ctype}' uses {bad} (use a fixed-width type"
                    " or int)"]
    if stars == 0:
        if base in SCALARS or base in callbacks or (is_return and
                                                    base == "void"):
            return []
        if base.startswith(("struct ", "union ")) or base in opaque:
            return [f"{where}: '{ctype}' by value (pass a pointer)"]
        return [f"{where}: '{ctype}' is not int, unsigned, size_t, double "
                "or a fixed-width integer"]
    if is_return and base == "char" and "const" not in tokens:
        return [f"{where}: returns a writable char* (who frees it?)"]
    if base in SCALARS | {"char", "void"} | opaque or base in callbacks:
        return []
    return [f"{where}: pointer to '{base}', not a known opaque or scalar "
            "type"]


def check(text):
    """All problems of a header text (an empty list when it is clean)."""
    functions, callbacks, problems = parse_header(text)
    opaque = opaque_types(text)
    for kind, table in (("function", functions), ("callback", callbacks)):
        for name, (ret, params) in sorted(table.items()):
            problems += _type_problems(ret, f"{kind} {name} returns", opaque,
                                       callbacks, is_return=True)
            for i, (ptype, pname) in enumerate(params):
                where = f"{kind} {name}, parameter {pname or i + 1}"
                if pname is None and "..." not in ptype:
                    problems.append(f"{where}: unnamed parameter '{ptype}'")
                problems += _type_problems(ptype, where, opaque, callbacks)
                problems += _length_problems(params, i, where)
    return problems


def _length_problems(params, i, where):
    ptype, pname = params[i]
    tokens = ptype.replace("*", " * ").split()
    if tokens.count("*") != 1:
        return []
    base = [t for t in tokens if t not in ("const", "*")]
    needs = (base == ["uint8_t"] or
             (base == ["char"] and ("const" not in tokens or
                                    pname in BUFFER_NAMES)))
    if pname and pname.endswith("_json") and (base != ["char"] or
                                              "const" not in tokens):
        return [f"{where}: a *_json parameter is const char* (JSON text)"]
    following = params[i + 1][0].split() if i + 1 < len(params) else []
    if needs and following != ["size_t"]:
        return [f"{where}: '{ptype}' may hold NUL bytes but no size_t length "
                "follows it"]
    return []


# ---- self-test: (what the report must say, a declaration that breaks a
# rule); GOOD must pass.
BAD = [
    ("varargs", "AGENTWS_EXTERN int agentws_f(int a, ...);"),
    ("by value", "typedef struct agentws_x agentws_x;\n"
                 "AGENTWS_EXTERN int agentws_f(agentws_x x);"),
    ("by value", "AGENTWS_EXTERN int agentws_f(struct uv_loop_s loop);"),
    ("bit-fields", "struct agentws_s { int a : 3; };"),
    ("public union", "union agentws_u { int a; double b; };"),
    ("uses long", "AGENTWS_EXTERN long agentws_f(int a);"),
    ("ssize_t", "AGENTWS_EXTERN int agentws_f(ssize_t n);"),
    ("enum type", "enum agentws_e { A = 1 };\n"
                  "AGENTWS_EXTERN int agentws_f(enum agentws_e e);"),
    ("is not int", "AGENTWS_EXTERN int agentws_f(short s);"),
    ("is not int", "AGENTWS_EXTERN int agentws_f(char c);"),
    ("is not int", "AGENTWS_EXTERN int agentws_f(float f);"),
    ("uses long", "AGENTWS_EXTERN int agentws_f(unsigned long n);"),
    ("no size_t length", "AGENTWS_EXTERN int agentws_f(const uint8_t *data);"),
    ("no size_t length", "AGENTWS_EXTERN int agentws_f(const char *text, int n);"),
    ("no size_t length", "AGENTWS_EXTERN int agentws_f(char *buf);"),
    ("no size_t length", "typedef void (*agentws_cb)(const char *body, long n);"),
    ("inline function pointer", "AGENTWS_EXTERN int agentws_f(void (*cb)(int a));"),
    ("unnamed", "AGENTWS_EXTERN int agentws_f(int);"),
    ("*_json", "AGENTWS_EXTERN int agentws_f(const uint8_t *data_json, "
               "size_t n);"),
    ("writable char*", "AGENTWS_EXTERN char *agentws_f(int a);"),
]
GOOD = """
typedef struct agentws_m agentws_m;
struct uv_loop_s;
enum agentws_error { AGENTWS_ERR_X = -1001 };
typedef int (*agentws_cb)(agentws_m *m, uint64_t id, const uint8_t *data,
                          size_t len, void *user_data);
AGENTWS_EXTERN int agentws_f(agentws_m *m, struct uv_loop_s *loop, int a,
                             unsigned u, int64_t b, uint64_t c, double d,
                             const char *name, const char *text, size_t n,
                             char *buf, size_t cap, agentws_cb cb,
                             const char *data_json, agentws_m **out);
AGENTWS_EXTERN const char *agentws_g(void);
AGENTWS_EXTERN unsigned agentws_h(void);
"""


def self_test():
    failures = [f"self-test: '{what}' not caught: {text!r}"
                for what, text in BAD
                if not any(what in p for p in check(text))]
    failures += [f"self-test: clean header flagged: {p}" for p in check(GOOD)]
    return failures


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        text = f.read()
    problems = self_test()
    functions, _, _ = parse_header(text)
    if not functions:
        problems.append(f"{argv[1]}: no {EXTERN} function found")
    problems += [f"{argv[1]}: {p}" for p in check(text)]
    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        print(f"check-ctypes: {len(functions)} functions and their callbacks"
              " are ctypes-trivial")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
