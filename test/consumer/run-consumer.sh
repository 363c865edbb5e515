#!/bin/sh
# Word splitting of $CC, $CFLAGS_STRICT and pkg-config output is wanted:
# shellcheck disable=SC2046,SC2086
# Builds test/consumer/consumer.c the way an out-of-tree user would: against
# a staged `meson install`, found only through pkg-config.
#
# usage: run-consumer.sh BUILDDIR CONSUMER_C
# environment: MESON (default: meson), PKG_CONFIG (default: pkg-config),
#              CC (default: cc; may hold several words, e.g. "ccache cc"),
#              EXTRA_CFLAGS (e.g. -fsanitize=address,undefined when the
#              library was built with sanitizers)
#
# 1. meson install --destdir into a temporary directory;
# 2. point PKG_CONFIG_PATH at the staged libagentws.pc, which is
#    relocatable (meson's pkgconfig.relocatable), and check that its paths
#    resolve inside the stage;
# 3. build consumer.c with `pkg-config --cflags --libs libagentws`, run it
#    with LD_LIBRARY_PATH on the staged libdir, check it used the staged
#    libagentws.so.0 and printed the version;
# 4. build it again against libagentws.a with `pkg-config --static`, which
#    only links if Libs.private/Requires.private name every dependency, and
#    check the result needs no libagentws.so at all.
set -eu

if [ $# -ne 2 ]; then
  echo "usage: $0 BUILDDIR CONSUMER_C" >&2
  exit 2
fi
builddir=$1
src=$2
MESON=${MESON:-meson}
PKG_CONFIG=${PKG_CONFIG:-pkg-config}
CC=${CC:-cc}
CFLAGS_STRICT="-std=c11 -Wall -Wextra -Wpedantic -Werror ${EXTRA_CFLAGS:-}"

fail() {
  echo "run-consumer: FAIL: $*" >&2
  exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/agentws-consumer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
stage=$tmp/stage

# 1. Staged install. --no-rebuild: meson test has built everything already,
#    and a nested ninja must not run inside a test.
if ! "$MESON" install -C "$builddir" --no-rebuild --destdir "$stage" \
    >"$tmp/install.log" 2>&1; then
  cat "$tmp/install.log" >&2
  fail "meson install failed"
fi

pc=$(find "$stage" -name libagentws.pc | head -n 1)
[ -n "$pc" ] || fail "no libagentws.pc in the staged install"
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
# Only our .pc comes from the stage; libuv & co. come from the system.

# 2. The .pc is relocatable (prefix=${pcfiledir}/...), so plain pkg-config
#    must resolve every path inside the stage.
pc() { "$PKG_CONFIG" "$@"; }
case "$(pc --variable=prefix libagentws)" in
  "$stage"/*) ;;
  *) fail "libagentws.pc is not relocatable: prefix $(pc --variable=prefix libagentws)" ;;
esac

includedir=$(pc --variable=includedir libagentws)
libdir=$(pc --variable=libdir libagentws)
[ -f "$includedir/agentws.h" ] || fail "no agentws.h in includedir $includedir"
[ -f "$includedir/agentws_version.h" ] ||
  fail "no agentws_version.h in includedir $includedir"
[ -e "$libdir/libagentws.so" ] || fail "no libagentws.so in libdir $libdir"
[ -e "$libdir/libagentws.so.0" ] || fail "no libagentws.so.0 in $libdir"
[ -f "$libdir/libagentws.a" ] || fail "no libagentws.a in libdir $libdir"
version=$(pc --modversion libagentws)
case "$(pc --cflags libagentws)" in
  *"-I$includedir"*) ;;
  *) fail "--cflags does not name $includedir: $(pc --cflags libagentws)" ;;
esac

# 3. Shared.
$CC $CFLAGS_STRICT -o "$tmp/consumer" "$src" \
  $(pc --cflags --libs libagentws) || fail "shared build failed"
out=$(LD_LIBRARY_PATH=$libdir "$tmp/consumer") || fail "consumer failed: $out"
echo "run-consumer: shared: $out"
case "$out" in
  "consumer ok: libagentws $version "*) ;;
  *) fail "unexpected output (want version $version): $out" ;;
esac
resolved=$(LD_LIBRARY_PATH=$libdir ldd "$tmp/consumer" |
  awk '/libagentws\.so/ { print $1, $3 }')
[ "$resolved" = "libagentws.so.0 $libdir/libagentws.so.0" ] ||
  fail "the consumer did not load the staged libagentws.so.0: $resolved"

# 4. Static: libagentws.a instead of -lagentws, private deps from --static.
static_libs=""
for w in $(pc --static --libs libagentws); do
  if [ "$w" = "-lagentws" ]; then
    w=$libdir/libagentws.a
  fi
  static_libs="$static_libs $w"
done
case "$static_libs" in
  *libagentws.a*) ;;
  *) fail "--static --libs has no -lagentws: $static_libs" ;;
esac
$CC $CFLAGS_STRICT -o "$tmp/consumer-static" "$src" \
  $(pc --static --cflags libagentws) $static_libs ||
  fail "static build failed: Libs.private/Requires.private incomplete?"
if readelf -d "$tmp/consumer-static" | grep -q 'libagentws'; then
  fail "the static consumer still needs libagentws.so"
fi
out=$("$tmp/consumer-static") || fail "static consumer failed: $out"
echo "run-consumer: static: $out"
case "$out" in
  "consumer ok: libagentws $version "*) ;;
  *) fail "unexpected static output: $out" ;;
esac

# Informational: without --static the same link should fail, which shows
# that Libs.private is what made the static build work.
if $CC ${EXTRA_CFLAGS:-} -o "$tmp/consumer-nostatic" "$src" $(pc --cflags libagentws) \
    "$libdir/libagentws.a" $(pc --libs-only-other --libs-only-L \
    libagentws) -luv >/dev/null 2>&1; then
  echo "run-consumer: note: linking libagentws.a without --static" \
    "flags also worked"
fi
echo "run-consumer: OK"
