#!/usr/bin/env bash
# The third-party OFREP clients the integration tests run against the real server
# (flag-server/tests/ofrep_clients.rs), pinned, installed under the cargo target directory:
# - Python: openfeature-sdk + openfeature-provider-ofrep (PyPI), in a venv;
# - Node: @openfeature/server-sdk + @openfeature/ofrep-provider (npm), in a folder;
# - the browser: @openfeature/web-sdk + @openfeature/ofrep-web-provider (npm), whose ES
#   modules the browser test serves to headless chromium (installed by .ci/run).
# Idempotent: a second run with the same pins does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

OPENFEATURE_SDK_VERSION=0.10.0
OFREP_PROVIDER_VERSION=0.3.0
NODE_SERVER_SDK_VERSION=1.23.0
NODE_OFREP_PROVIDER_VERSION=0.1.3
WEB_SDK_VERSION=1.10.0
WEB_OFREP_PROVIDER_VERSION=0.4.3

target_dir=${CARGO_TARGET_DIR:-target}
venv=$target_dir/ofrep-python-venv
stamp="openfeature-sdk==$OPENFEATURE_SDK_VERSION openfeature-provider-ofrep==$OFREP_PROVIDER_VERSION"
if [[ "$(cat "$venv/pins" 2>/dev/null)" != "$stamp" ]]; then
    echo "ofrep clients: installing $stamp into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    # shellcheck disable=SC2086
    "$venv/bin/pip" install --quiet --disable-pip-version-check $stamp
    echo "$stamp" >"$venv/pins"
fi

# npm_folder DIR PACKAGE@VERSION...: the packages, alone, in DIR/node_modules.
npm_folder() {
    local dir=$1
    shift
    local stamp="$*"
    if [[ "$(cat "$dir/pins" 2>/dev/null)" != "$stamp" ]]; then
        echo "ofrep clients: installing $stamp into $dir"
        rm -rf "$dir"
        mkdir -p "$dir"
        echo '{"name": "ofrep-clients", "private": true}' >"$dir/package.json"
        npm install --silent --no-audit --no-fund --prefix "$dir" "$@"
        echo "$stamp" >"$dir/pins"
    fi
}
npm_folder "$target_dir/ofrep-node" "@openfeature/server-sdk@$NODE_SERVER_SDK_VERSION" \
    "@openfeature/ofrep-provider@$NODE_OFREP_PROVIDER_VERSION"
npm_folder "$target_dir/ofrep-web" "@openfeature/web-sdk@$WEB_SDK_VERSION" \
    "@openfeature/ofrep-web-provider@$WEB_OFREP_PROVIDER_VERSION"
