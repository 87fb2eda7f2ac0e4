#!/bin/sh
# Builds the native addon (native/, binding.gyp) against the Node headers installed with the
# system Node (node-gyp cannot download headers on machines without internet access).
set -eu
cd "$(dirname "$0")/.."
nodedir="${npm_config_nodedir:-}"
if [ -z "$nodedir" ]; then
  prefix=$(dirname "$(dirname "$(command -v node)")")
  if [ -f "$prefix/include/node/node_api.h" ]; then nodedir="$prefix"; else nodedir=/usr; fi
fi
if [ ! -f "$nodedir/include/node/node_api.h" ]; then
  echo "build-native: Node headers not found under $nodedir/include/node (set npm_config_nodedir)" >&2
  exit 1
fi
gyp="node_modules/.bin/node-gyp"
[ -x "$gyp" ] || gyp="npx --no-install node-gyp"
echo "build-native: node-gyp rebuild --nodedir=$nodedir"
$gyp rebuild --nodedir="$nodedir" --loglevel=warn
