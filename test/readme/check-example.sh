#!/bin/sh
# Keeps the README's embedding example true: extracts the ```c block under
# "## Embedding"
# and compiles and links it against the just-built library.
# usage: check-example.sh README.md INCLUDE_DIR GENERATED_INCLUDE_DIR LIBDIR
set -eu
readme=$1; inc=$2; geninc=$3; libdir=$4
CC=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The block under "## Embedding": a complete program.
awk '/^## Embedding/{sec=1} sec && /^```c$/{on=1; next} /^```$/{if(on){exit}} on{print}' \
  "$readme" > "$tmp/example.c"
[ -s "$tmp/example.c" ] || { echo "no \`\`\`c block in $readme" >&2; exit 1; }
lines=$(wc -l < "$tmp/example.c")
echo "README example: $lines lines"
# shellcheck disable=SC2086
$CC ${EXTRA_CFLAGS:-} -Wall -Werror -I"$inc" -I"$geninc" -o "$tmp/example" \
  "$tmp/example.c" -L"$libdir" -lagentws $(pkg-config --cflags --libs libuv)
echo "README example compiles and links"
