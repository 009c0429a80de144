#!/usr/bin/env bash
# The third-party OFREP clients the integration tests run against the real server
# (flag-server/tests/ofrep_clients.rs), pinned, installed under the cargo target directory:
# - Python: openfeature-sdk + openfeature-provider-ofrep (PyPI), in a venv;
# - Node: @openfeature/server-sdk + @openfeature/ofrep-provider (npm), in a folder.
# Idempotent: a second run with the same pins does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

OPENFEATURE_SDK_VERSION=0.10.0
OFREP_PROVIDER_VERSION=0.3.0
NODE_SERVER_SDK_VERSION=1.23.0
NODE_OFREP_PROVIDER_VERSION=0.1.3

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

node_dir=$target_dir/ofrep-node
stamp="@openfeature/server-sdk@$NODE_SERVER_SDK_VERSION @openfeature/ofrep-provider@$NODE_OFREP_PROVIDER_VERSION"
if [[ "$(cat "$node_dir/pins" 2>/dev/null)" != "$stamp" ]]; then
    echo "ofrep clients: installing $stamp into $node_dir"
    rm -rf "$node_dir"
    mkdir -p "$node_dir"
    echo '{"name": "ofrep-clients", "private": true}' >"$node_dir/package.json"
    # shellcheck disable=SC2086
    npm install --silent --no-audit --no-fund --prefix "$node_dir" $stamp
    echo "$stamp" >"$node_dir/pins"
fi
