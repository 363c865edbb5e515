#!/bin/sh
# Re-records the committed ABI baseline from a build directory:
#   test/abi/NAME.abi        abidw dump of lib/libagentws.so (check-abidiff.py)
#   test/abi/NAME.constants  public AGENTWS_* constants (check-constants.py)
# which the `abidiff` and `constants` tests of the abi suite compare against.
#
# usage: test/abi/update-baseline.sh [BUILDDIR [NAME]]
#   BUILDDIR  default: build (the regular gcc build, relative to the source
#             root); must be a gcc -g build without sanitizers.
#   NAME      default: libagentws-0.1.0. At a later release, record under
#             that release's name (e.g. libagentws-0.2.0), point abi_baseline
#             in test/meson.build at it and git rm the old pair; the same
#             after a deliberate SONAME bump (README.md, "ABI promise").
# environment: CC (default: cc) preprocesses the header for the constants.
#
# Run it only when the ABI is meant to change: once the 0.1.0 API is final,
# then at a release. Review `git diff test/abi` before committing: within
# one SONAME it may only show additions.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
builddir=${1:-build}
name=${2:-libagentws-0.1.0}
case $builddir in /*) ;; *) builddir=$root/$builddir ;; esac
py=/usr/bin/python3

if [ ! -f "$builddir/build.ninja" ]; then
  echo "update-baseline: $builddir is not a meson build directory" >&2
  exit 2
fi

# b_sanitize and debug of the build, from meson's introspection.
opts=$(meson introspect --buildoptions "$builddir" | "$py" -c '
import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print(o.get("b_sanitize", "none"), str(o.get("debug", False)).lower())')
sanitize=${opts% *}
debug=${opts#* }
if [ "$sanitize" != none ]; then
  echo "update-baseline: $builddir is built with -Db_sanitize=$sanitize;" \
       "record the baseline from the regular build (build/)" >&2
  exit 2
fi
if [ "$debug" != true ]; then
  echo "update-baseline: $builddir has no debug info (-Ddebug=false);" \
       "abidw needs DWARF" >&2
  exit 2
fi

# Only the shared library: the rest of the tree need not build.
if ! out=$(meson compile -C "$builddir" agentws:shared_library 2>&1); then
  printf '%s\n' "$out" >&2
  echo "update-baseline: building libagentws.so in $builddir failed" >&2
  exit 1
fi
lib=$builddir/lib/libagentws.so
# gcc only: clang's DWARF 5 keeps private definitions of some opaque handles
# in the dump (see check-abidiff.py), which would make later private field
# changes fail the check in clang builds.
producer=$(readelf --debug-dump=info "$lib" 2>/dev/null |
  grep -m1 DW_AT_producer || true)
case $producer in
  *"GNU C"*) ;;
  *) echo "update-baseline: $lib was not built by gcc (${producer##*: });" \
          "record the baseline from the regular gcc build" >&2
     exit 2 ;;
esac
"$py" "$root/test/abi/check-abidiff.py" dump "$lib" \
  "$root/include" "$root/test/abi/$name.abi"
"$py" "$root/test/abi/check-constants.py" dump \
  "$root/test/abi/$name.constants" "$root/include/agentws.h" \
  -I "$root/include" -I "$builddir/include"

echo "next: meson test -C $builddir --suite abi --print-errorlogs;" \
     "git diff --stat test/abi"
