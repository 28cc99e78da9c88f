#!/usr/bin/env bash
# check-sizes.sh -- enforce the size limits of docs/style.md: .c files at most
# 1,500 lines, headers at most 400. Prints each offender; exit 1 if any.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bad=0
while IFS= read -r f; do
    n=$(wc -l <"$f")
    case "$f" in
    *.h) limit=400 ;;
    *) limit=1500 ;;
    esac
    if [ "$n" -gt "$limit" ]; then
        echo "$f: $n lines (limit $limit)"
        bad=1
    fi
done < <(git ls-files -- 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h' 'bench/*.c' 2>/dev/null)
exit $bad
