#!/usr/bin/env bash
# The main job on the shipped examples: compile the publishers, then check every
# claims file against them (and against the compiled policy, which must agree).
set -u
cd "$(dirname "$0")/.."
compiled="$(mktemp -t tppolicy-compiled.XXXXXX)"
trap 'rm -f "$compiled"' EXIT
tppolicy compile examples/publishers.yaml -o "$compiled" || exit $?
echo "compiled examples/publishers.yaml ($(wc -l < "$compiled") lines of policy)"
status=0
for claims in examples/claims/*.json; do
  echo
  echo "== $claims"
  tppolicy check --publishers examples/publishers.yaml --claims "$claims"
  from_yaml=$?
  tppolicy check --policy "$compiled" --claims "$claims" > /dev/null
  from_policy=$?
  if [ "$from_yaml" != "$from_policy" ]; then
    echo "MISMATCH: the compiled policy decided differently (exit $from_policy)" >&2
    status=1
  fi
  # Denials are expected for the *-wrong-* and *-pull-request-target examples.
  case "$claims" in
    *wrong*|*pull-request-target*) [ "$from_yaml" = 1 ] || status=1 ;;
    *) [ "$from_yaml" = 0 ] || status=1 ;;
  esac
done
echo
[ "$status" = 0 ] && echo "all examples decided as expected" || echo "some examples decided unexpectedly" >&2
exit "$status"
