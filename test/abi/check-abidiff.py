#!/usr/bin/python3
"""ABI gate, abigail part (STYLE.md rule 23b).

usage: check-abidiff.py dump  LIB INCLUDE_DIR OUT.abi
       check-abidiff.py check BASELINE.abi LIB INCLUDE_DIR CURRENT.abi

dump   writes the ABI of the built shared library LIB, as seen through the
       public headers in INCLUDE_DIR, to OUT.abi (test/abi/update-baseline.sh
       uses it to record the committed baseline).
check  dumps LIB the same way to CURRENT.abi (kept for inspection) and
       compares it with the committed BASELINE.abi using abidiff.

The verdict of `check`:
  * no difference                                    -> pass (0)
  * only added functions or symbols                  -> pass (0), listed
  * anything else: a removed function, a changed parameter, return or
    callback type, a changed public type, a SONAME change, ...
                                                     -> FAIL (1)
  * abidiff or abidw not installed                   -> skip (77)
  * LIB without DWARF, abidiff error, no baseline    -> FAIL (1)

Why not just abidiff's exit code: its bit 8 (ABIDIFF_ABI_INCOMPATIBLE_CHANGE)
is set only for a removed symbol (or a changed SONAME); a changed parameter
type sets bit 4 (ABIDIFF_ABI_CHANGE) alone, and so does an added function
(man abidiff, RETURN VALUES). So bit 4 is resolved by a second run with
--no-added-syms, which leaves bit 4 set only when something besides
additions changed, and the summary lines of the first run are cross-checked
("N Removed, N Changed"): either one seeing more than additions fails the
gate. (--no-added-syms alone with "fail on bit 8" would pass a changed
parameter type.)

abidw flags, and why (the same for the baseline and the current dump, so
the two inputs of abidiff are produced alike):
  --headers-dir INCLUDE_DIR --drop-private-types --exported-interfaces-only
      only exported functions and the types they reach; the definitions
      behind the opaque handles (lib/ internals) are left out of the dump.
  --short-locs
      locations as file basenames only, so reports say where a changed
      type or function is ("agentws.h:64") without build-directory paths.
  --no-corpus-path --no-comp-dir-path --type-id-style hash
      no build-directory paths, and stable type ids, so a re-recorded
      baseline differs only where the ABI does.

abidiff gets --suppressions test/abi/suppr (libuv's types, reached only
through uv_loop_t *) and no --hd1/--hd2: with those, abidiff counts every
type defined outside include/ as private, uint64_t and size_t from the C
library included, and a callback parameter changed from uint64_t to
uint32_t passed the gate (with --no-show-locs dumps it instead hid a
member type change in a public struct). The file says why for each rule.

Works with the gcc build and the clang ASan/UBSan build against one
baseline, which must come from gcc (update-baseline.sh checks): clang's
DWARF 5 gives the structs defined in a .c file (agentws_request,
agentws_stats) file index 0, which libabigail 2.2 reads as no location, so
--drop-private-types keeps their private definitions in a clang dump. Against
the gcc baseline, where they are declaration-only, abidiff files that as a
harmless "declaration-only type is now defined" change and reports
nothing, also when a private field changes (checked). Against a clang
baseline such a field change would fail the gate.

The #define constants (AGENTWS_RULE_*, AGENTWS_CLOSE_*, ...) and the values
of enum agentws_error never reach DWARF through a function signature (they
travel as int), so abidiff cannot see them: check-constants.py guards those.
"""

import os
import re
import shutil
import subprocess
import sys

ABIDW_FLAGS = ["--short-locs", "--no-corpus-path", "--no-comp-dir-path",
               "--type-id-style", "hash", "--drop-private-types",
               "--exported-interfaces-only"]

# man abidiff, RETURN VALUES
ABIDIFF_ERROR = 1
ABIDIFF_USAGE_ERROR = 2
ABIDIFF_ABI_CHANGE = 4
ABIDIFF_ABI_INCOMPATIBLE_CHANGE = 8

SKIP = 77

SUPPRESSIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "suppr")

# "Functions changes summary: 0 Removed, 1 Changed (3 filtered out), 2 Added
# functions", and the same for variables and for symbols without debug info
# ("Function symbols changes summary: 0 Removed, 1 Added function symbol not
# referenced by debug info"), which has no Changed count.
SUMMARY = re.compile(r"^\s*(.*?) changes summary:\s*(\d+) Removed"
                     r"(?:,\s*(\d+) Changed)?", re.M)


def tool(name):
    """The program from $ABIDW/$ABIDIFF, else from PATH, else None."""
    return shutil.which(os.environ.get(name.upper(), name))


def need_tools():
    abidw, abidiff = tool("abidw"), tool("abidiff")
    if abidw is None or abidiff is None:
        print("SKIP: abidw/abidiff not installed "
              "(Debian package abigail-tools, listed in .ci/packages.txt)")
        sys.exit(SKIP)
    return abidw, abidiff


def dump(abidw, lib, include_dir, out):
    """Writes LIB's ABI to OUT; exits 1 when abidw fails or finds no DWARF."""
    if not os.path.isfile(lib):
        print(f"check-abidiff: {lib}: no such library", file=sys.stderr)
        sys.exit(1)
    cmd = [abidw] + ABIDW_FLAGS + ["--headers-dir", include_dir,
                                   "--out-file", out, lib]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"check-abidiff: abidw failed ({r.returncode}):\n"
              f"  {' '.join(cmd)}\n{r.stdout}{r.stderr}", file=sys.stderr)
        sys.exit(1)
    with open(out, encoding="utf-8") as f:
        text = f.read()
    # Without DWARF abidw still writes the ELF symbol table, but no function
    # declarations: a symbol-only dump would hide every type change.
    if "<function-decl " not in text:
        print(f"check-abidiff: {lib} has no debug info (DWARF); the ABI "
              "check needs a -g build (meson -Ddebug=true, the default for "
              "the debug and debugoptimized build types)", file=sys.stderr)
        sys.exit(1)
    return cmd


def abidiff_run(abidiff, baseline, current, extra=()):
    cmd = [abidiff, "--suppressions", SUPPRESSIONS, *extra, baseline,
           current]
    r = subprocess.run(cmd, capture_output=True, text=True)
    return cmd, r.returncode, r.stdout + r.stderr


def beyond_additions(report):
    """Summary lines of |report| that count removed or changed entities."""
    bad = []
    for m in SUMMARY.finditer(report):
        removed = int(m.group(2))
        changed = int(m.group(3) or 0)
        if removed or changed:
            bad.append(m.group(0).strip())
    return bad


def check(abidw, abidiff, baseline, lib, include_dir, current):
    if not os.path.isfile(baseline):
        print(f"ABI check FAILED: no baseline {baseline} "
              "(record it with test/abi/update-baseline.sh)")
        return 1
    dump(abidw, lib, include_dir, current)
    cmd, rc, report = abidiff_run(abidiff, baseline, current)
    print("$ " + " ".join(cmd))
    print(report.rstrip() or "(no difference)")
    print(f"abidiff exit code: {rc}")
    if rc & (ABIDIFF_ERROR | ABIDIFF_USAGE_ERROR):
        print("ABI check FAILED: abidiff could not compare the two ABIs")
        return 1
    if rc == 0:
        print(f"ABI check OK: {lib} matches {os.path.basename(baseline)}")
        return 0
    if rc & ABIDIFF_ABI_INCOMPATIBLE_CHANGE:
        print("ABI check FAILED: incompatible change (abidiff's verdict: "
              "a removed public function or a changed SONAME, see above). "
              "Within SONAME libagentws.so.0 functions are only ever added; "
              "see README.md, 'ABI promise'.")
        return 1
    # ABIDIFF_ABI_CHANGE alone: additions, or changed types/signatures.
    _, rc2, report2 = abidiff_run(abidiff, baseline, current,
                                  ["--no-added-syms"])
    bad = beyond_additions(report)
    if rc2 & (ABIDIFF_ERROR | ABIDIFF_USAGE_ERROR):
        print("ABI check FAILED: abidiff --no-added-syms failed:\n" + report2)
        return 1
    if rc2 != 0 or bad:
        print("ABI check FAILED: a shipped function, callback or public "
              "type changed (abidiff --no-added-syms exit code "
              f"{rc2}{'; ' + '; '.join(bad) if bad else ''}). Never change "
              "a shipped signature: add a new function and deprecate the "
              "old one (STYLE.md rule 22).")
        return 1
    print("ABI check OK: additions only (compatible). Re-record the "
          "baseline at release with test/abi/update-baseline.sh.")
    return 0


def main(argv):
    if len(argv) == 5 and argv[1] == "dump":
        abidw, _ = need_tools()
        lib, include_dir, out = argv[2:]
        dump(abidw, lib, include_dir, out)
        print(f"wrote {out}")
        return 0
    if len(argv) == 6 and argv[1] == "check":
        abidw, abidiff = need_tools()
        return check(abidw, abidiff, *argv[2:])
    print("\n".join(__doc__.strip().splitlines()[2:4]), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
