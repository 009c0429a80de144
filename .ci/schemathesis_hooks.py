"""Schemathesis hooks for .ci/schemathesis.sh.

Webhooks must never send anything off the machine. The server keeps its SSRF rules on (no
--webhook-allow-private), and every generated webhook URL is replaced by a loopback one before
the request goes out, so the server resolves no name and accepts no address: creation answers
422 and no delivery can ever be queued. The script checks at the end that no webhook exists.

Two resources the script creates are kept for the whole run, so the operations after them
keep something to act on: the run's own admin token (id in ST_KEEP_TOKEN_ID) is never revoked
(the request goes to token id 0, which does not exist, instead) and the flag `schemathesis` is
never archived (the request goes to the flag `absent`).
"""

import os

import schemathesis

LOOPBACK_URL = "http://127.0.0.1:9/schemathesis"
KEEP_TOKEN_ID = os.environ.get("ST_KEEP_TOKEN_ID")
KEEP_FLAG = "schemathesis"


@schemathesis.hook
def before_call(context, case, **kwargs):
    method = case.operation.method.upper()
    path = case.operation.path
    if method == "POST" and path == "/api/v1/webhooks":
        if isinstance(case.body, dict) and isinstance(case.body.get("url"), str):
            case.body["url"] = LOOPBACK_URL
    elif method == "DELETE" and path == "/api/v1/tokens/{id}":
        params = case.path_parameters
        if params is not None and KEEP_TOKEN_ID is not None and _as_int(params.get("id")) == int(KEEP_TOKEN_ID):
            params["id"] = 0
    elif method == "DELETE" and path == "/api/v1/flags/{key}":
        params = case.path_parameters
        if params is not None and params.get("key") == KEEP_FLAG:
            params["key"] = "absent"


def _as_int(value):
    try:
        return int(str(value))
    except ValueError:
        return None
