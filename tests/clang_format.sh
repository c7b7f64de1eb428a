#!/usr/bin/env bash
# clang_format — every tracked .c/.h file is laid out as .clang-format says.
#
#   tests/clang_format.sh SOURCE_ROOT [CLANG_FORMAT]
#
# Runs `clang-format --dry-run --Werror` on each file: `git ls-files` in a git checkout,
# otherwise every .c/.h under SOURCE_ROOT outside .git and build directories. Exit 0 when
# all are formatted, 1 with the list of files that are not (and the command that fixes them),
# 77 (skipped) when clang-format is not installed. The tree is formatted with Debian 12's
# clang-format 14; another major version may lay some lines out differently.
set -euo pipefail

top=${1:?usage: clang_format.sh SOURCE_ROOT [CLANG_FORMAT]}
cf=${2:-clang-format}
if ! command -v "$cf" >/dev/null 2>&1; then
    echo "clang_format: $cf not found: skipped (Debian package clang-format)"
    exit 77
fi
cd "$top"

files=()
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    mapfile -d '' files < <(git ls-files -z -- '*.c' '*.h')
else
    mapfile -d '' files < <(find . \( -name .git -o -name meson-private -o -path './build*' \) \
        -prune -o -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z)
fi
[ ${#files[@]} -gt 0 ] || { echo "clang_format: no .c/.h files under $top"; exit 1; }

present=()
for f in "${files[@]}"; do
    if [ -f "$f" ]; then # a file deleted in the work tree is still in the index
        present+=("$f")
    fi
done
# One process for all files (fast); only when it fails, one per file to name them exactly.
bad=()
if ! "$cf" --dry-run --Werror "${present[@]}" >/dev/null 2>&1; then
    for f in "${present[@]}"; do
        "$cf" --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("${f#./}")
    done
    [ ${#bad[@]} -gt 0 ] || { echo "clang_format: $cf failed on the whole list only"; exit 1; }
fi

if [ ${#bad[@]} -gt 0 ]; then
    echo "clang_format: ${#bad[@]} of ${#files[@]} files are not formatted ($("$cf" --version)):"
    printf '  %s\n' "${bad[@]}"
    echo "first differences:"
    "$cf" --dry-run "${bad[@]}" 2>&1 | head -30 || true
    echo "fix: (cd $top && $cf -i ${bad[*]})"
    exit 1
fi
echo "clang_format: ${#present[@]} files formatted"
