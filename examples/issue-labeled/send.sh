#!/bin/sh
# send.sh [PAYLOAD]: delivers a recorded GitHub payload to the trigger
# the way GitHub does: X-Hub-Signature-256 is the HMAC-SHA-256 of the raw
# body under the webhook's secret, computed here with openssl.
#
#   SECRET    the webhook's secret (the value of the vault secret)
#   URL       the trigger's endpoint (default
#             http://127.0.0.1:7700/v1/triggers/issue-labeled)
#   DELIVERY  the delivery id (default: a fixed one, so sending twice shows
#             that a redelivery starts nothing new)
#   EVENT     X-GitHub-Event (default issues)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
payload=${1:-$here/issues.labeled.json}
: "${SECRET:?set SECRET to the webhook's secret}"
URL=${URL:-http://127.0.0.1:7700/v1/triggers/issue-labeled}
DELIVERY=${DELIVERY:-72d3162e-cc78-11e3-81ab-4c9367dc0958}
sig=$(openssl dgst -sha256 -hmac "$SECRET" <"$payload" | sed 's/^.*= //')
curl -sS -X POST "$URL" \
  -H 'Content-Type: application/json' \
  -H "X-GitHub-Event: ${EVENT:-issues}" \
  -H "X-GitHub-Delivery: $DELIVERY" \
  -H "X-Hub-Signature-256: sha256=$sig" \
  --data-binary @"$payload"
echo
