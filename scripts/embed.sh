#!/bin/sh
# embed.sh NAME FILE... — prints a C file holding each FILE's bytes, so the
# binary carries its SQL migrations and web assets:
#   const struct embedded_file NAME[] = {{"basename", data, len}, ..., {0}};
set -eu
name=$1; shift
echo '#include <stddef.h>'
echo '#include "core/embedded.h"'
i=0
for f in "$@"; do
    printf 'static const unsigned char %s_%d[] = {' "$name" "$i"
    od -An -v -tx1 "$f" | tr -s ' \n' ' ' | sed -e 's/^ //' -e 's/ $//' -e 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'
    echo '0x00};'
    i=$((i + 1))
done
printf 'const struct embedded_file %s[] = {\n' "$name"
i=0
for f in "$@"; do
    printf '    {"%s", %s_%d, sizeof %s_%d - 1},\n' "$(basename "$f")" "$name" "$i" "$name" "$i"
    i=$((i + 1))
done
echo '    {NULL, NULL, 0},'
echo '};'
