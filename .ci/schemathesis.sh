#!/usr/bin/env bash
# Schemathesis against the server's own OpenAPI document (issue 7): zero server errors, every
# answer's status, content type and body as the document says.
#
# Installs a pinned schemathesis with pip into a venv under the cargo target directory, builds
# and starts flag-server on 127.0.0.1 (an ephemeral port, a temporary database, an admin
# token), creates a few resources for the path parameters to find (schemathesis.toml), runs
# two passes against the served /openapi.json (the SDK and OFREP endpoints with an SDK token, then all
# the others with the admin token), stops the server, and exits non-zero on any failure.
# Bounded: a fixed seed, --max-examples per operation, and a wall-clock timeout per pass.
# Webhooks stay behind the SSRF rules and every generated webhook URL is made loopback
# (schemathesis_hooks.py): nothing leaves the machine. At the end the server must still be
# up, no webhook may exist, and its log must hold no error of its own and no panic.
#
# Knobs (environment): ST_MAX_EXAMPLES (default 80), ST_SEED (default 7), ST_TIMEOUT seconds
# per pass (default 480: the complete model schemas make generation slower), ST_REPORT_DIR (write JUnit and HAR reports of each pass there).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

SCHEMATHESIS_VERSION=4.32.5
HYPOTHESIS_VERSION=6.170.15
max_examples=${ST_MAX_EXAMPLES:-80}
seed=${ST_SEED:-7}
pass_timeout=${ST_TIMEOUT:-480}

target_dir=${CARGO_TARGET_DIR:-target}
venv=$target_dir/schemathesis-venv
st=$venv/bin/schemathesis
py=$venv/bin/python
if ! "$st" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
    echo "schemathesis: installing $SCHEMATHESIS_VERSION into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION" "hypothesis==$HYPOTHESIS_VERSION"
fi

cargo build --quiet -p flag-server
server_bin=$target_dir/debug/flag-server

work=$(mktemp -d)
server_pid=
cleanup() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

admin_token=st-admin-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
FLAG_ADMIN_TOKEN=$admin_token RUST_LOG=warn,flag_server=info "$server_bin" \
    --listen 127.0.0.1:0 --db "$work/flags.db" >"$work/server.out" 2>"$work/server.log" &
server_pid=$!

# Once bound, the server logs `listening addr=127.0.0.1:<port>`; then /healthz must answer.
addr=
for _ in $(seq 100); do
    addr=$(sed -n 's/.*listening addr=\([0-9.:]*\).*/\1/p' "$work/server.log" | head -n1)
    [[ -n $addr ]] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        cat "$work/server.log" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z $addr ]]; then
    echo "schemathesis: the server did not start" >&2
    exit 1
fi
base=http://$addr

# Waits for /healthz, creates the resources schemathesis.toml names, and prints an SDK token
# and the id of the run's own admin token.
read -r sdk_token admin_token_id < <("$py" - "$base" "$admin_token" <<'PY'
import json, sys, time, urllib.request

base, admin = sys.argv[1], sys.argv[2]
headers = {"Authorization": "Bearer " + admin, "Content-Type": "application/json"}

def call(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers=headers)
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)

for _ in range(100):
    try:
        call("/healthz")
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("schemathesis: /healthz did not answer")
call("/api/v1/environments", {"key": "staging"})
call("/api/v1/flags", {"key": "schemathesis", "kind": "boolean"})
for env in ("production", "staging"):
    call(f"/api/v1/environments/{env}/segments", {"key": "schemathesis", "included": ["user-1"]})
sdk = call("/api/v1/tokens", {"kind": "sdk", "environment": "production", "name": "schemathesis"})
(bootstrap,) = [t["id"] for t in call("/api/v1/tokens") if t["name"] == "bootstrap"]
print(sdk["token"], bootstrap)
PY
)
if [[ -z ${admin_token_id:-} ]]; then
    echo "schemathesis: cannot set up the server" >&2
    exit 1
fi

reports=()
if [[ -n ${ST_REPORT_DIR:-} ]]; then
    reports=(--report junit,har --report-dir "$ST_REPORT_DIR")
fi
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
run_pass() {
    local name=$1 token=$2
    shift 2
    local report=()
    if [[ ${#reports[@]} -gt 0 ]]; then
        report=("${reports[@]}" --report-junit-path "$ST_REPORT_DIR/$name.xml"
            --report-har-path "$ST_REPORT_DIR/$name.har")
    fi
    echo "schemathesis: $name pass"
    local pass_started=$SECONDS status=0
    ST_KEEP_TOKEN_ID=$admin_token_id SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH=.ci \
        timeout --kill-after=10 "$pass_timeout" \
        "$st" --config-file .ci/schemathesis.toml run "$base/openapi.json" \
        --header "Authorization: Bearer $token" \
        --checks "$checks" \
        --max-examples "$max_examples" --seed "$seed" \
        --workers 2 --request-timeout 10 \
        --generation-database none \
        --no-color \
        "${report[@]}" "$@" || status=$?
    echo "schemathesis: $name pass took $((SECONDS - pass_started)) s (exit $status)"
    if [[ $status -eq 124 || $status -eq 137 ]]; then
        echo "schemathesis: $name pass ran out of its ${pass_timeout} s budget" >&2
    fi
    return "$status"
}

failed=0
run_pass sdk "$sdk_token" --include-path-regex '^/(sdk|ofrep)/' || failed=1
# The admin event stream never ends by itself (its contract is flag-server/tests/console.rs).
run_pass admin "$admin_token" --exclude-path-regex '^/(sdk|ofrep)/|^/api/v1/events$' || failed=1

if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "schemathesis: the server died" >&2
    tail -n 50 "$work/server.log" >&2
    exit 1
fi

# No webhook may exist: none could be created, so nothing was sent anywhere.
"$py" - "$base" "$admin_token" <<'PY' || failed=1
import json, sys, urllib.request

req = urllib.request.Request(
    sys.argv[1] + "/api/v1/webhooks", headers={"Authorization": "Bearer " + sys.argv[2]}
)
with urllib.request.urlopen(req, timeout=5) as r:
    hooks = json.load(r)
if hooks:
    sys.exit(f"schemathesis: webhooks were created: {hooks}")
PY

if grep -qE ' ERROR flag_server|panicked' "$work/server.log"; then
    echo "schemathesis: the server logged errors:" >&2
    grep -E ' ERROR flag_server|panicked' "$work/server.log" >&2
    failed=1
fi
if [[ $failed -ne 0 ]]; then
    echo "schemathesis: failed (see above)" >&2
    exit 1
fi
echo "schemathesis: ok ($((SECONDS - started)) s in all)"
