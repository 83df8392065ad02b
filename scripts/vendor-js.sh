#!/usr/bin/env bash
# Refresh the console's vendored JavaScript (audience/console/static/vendor/) from npm.
# The console ships these files so it needs no build step and no internet at run time.
# Usage: scripts/vendor-js.sh            (the versions below)
#        HTMX=2.0.11 CHARTJS=4.6.1 scripts/vendor-js.sh
set -euo pipefail
HTMX="${HTMX:-2.0.11}"
CHARTJS="${CHARTJS:-4.6.1}"
cd "$(dirname "$0")/.."
out=audience/console/static/vendor
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "htmx.org@$HTMX" "chart.js@$CHARTJS" >/dev/null)
tar -xzf "$work/htmx.org-$HTMX.tgz" -C "$work" package/dist/htmx.min.js
cp "$work/package/dist/htmx.min.js" "$out/htmx.min.js"
rm -rf "$work/package"
tar -xzf "$work/chart.js-$CHARTJS.tgz" -C "$work" package/dist/chart.umd.min.js package/LICENSE.md
cp "$work/package/dist/chart.umd.min.js" "$out/chart.umd.min.js"
cp "$work/package/LICENSE.md" "$out/chart.js.LICENSE.md"
printf 'htmx.org %s (BSD-0-Clause)\nchart.js %s (MIT, see chart.js.LICENSE.md)\n' \
  "$HTMX" "$CHARTJS" >"$out/VERSIONS"
echo "vendored htmx.org $HTMX and chart.js $CHARTJS into $out"
