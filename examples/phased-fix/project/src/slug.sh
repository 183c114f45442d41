#!/bin/sh
# slug TEXT: lower case, runs of anything but letters and digits become
# one '-', none at either end.
slug() {
  printf '%s\n' "$1" | tr 'A-Z' 'a-z' | sed 's/[^a-z0-9]/-/g; s/^-*//; s/-*$//'
}
