#!/bin/sh
# Every C file is clang-formatted (the style in .clang-format).
cd "${SRCDIR:?}" || exit 1
if ! command -v clang-format >/dev/null 2>&1; then
  echo "clang-format is not installed; skipping the format check"
  exit 77
fi
files=$(git ls-files '*.c' '*.h' 2>/dev/null)
[ -n "$files" ] || { echo "not a git checkout; skipping"; exit 77; }
# shellcheck disable=SC2086
clang-format --dry-run -Werror $files
