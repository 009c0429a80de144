"""OFREP from Python: openfeature-sdk with openfeature-provider-ofrep (PyPI) against the real
server. Run by flag-server/tests/ofrep_clients.rs as `python client.py BASE_URL TOKEN`; any
failed check exits non-zero with what differed. Prints, as JSON, the variant each of the
`split-N` contexts got, for the Rust test to compare with the server's own evaluation."""

import json
import sys

from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

base, token = sys.argv[1], sys.argv[2]
api.set_provider(
    OFREPProvider(base, headers_factory=lambda: {"Authorization": f"Bearer {token}"})
)
client = api.get_client()
failures = []


def check(what, got, want):
    if got != want:
        failures.append(f"{what}: got {got!r}, want {want!r}")


ctx = EvaluationContext("user-1")
d = client.get_boolean_details("checkout", False, ctx)
check("target value", d.value, True)
check("target reason", d.reason, Reason.TARGETING_MATCH)
check("target variant", d.variant, "on")
check("target metadata", d.flag_metadata.get("reason"), "TARGET_MATCH")

d = client.get_boolean_details("checkout", False, EvaluationContext("u9", {"country": "NL"}))
check("rule value", d.value, True)
check("rule reason", d.reason, Reason.TARGETING_MATCH)
check("rule id", d.flag_metadata.get("ruleId"), "benelux")

d = client.get_string_details("theme", "none", ctx)
check("string", (d.value, d.reason, d.variant), ("red", Reason.STATIC, "red"))
check("integer", client.get_integer_value("limit", 0, ctx), 42)
check("float", client.get_float_value("ratio", 0.0, ctx), 0.25)
d = client.get_object_details("layout", {}, ctx)
check("object", d.value, {"columns": 3, "dense": True})

d = client.get_boolean_details("nope", True, ctx)
check("not found", (d.value, d.error_code, d.reason), (True, ErrorCode.FLAG_NOT_FOUND, Reason.ERROR))
d = client.get_string_details("checkout", "default", ctx)
check("type mismatch", (d.value, d.error_code), ("default", ErrorCode.TYPE_MISMATCH))
d = client.get_boolean_details("checkout", False, EvaluationContext(None, {"plan": "pro"}))
check("no targeting key", (d.value, d.error_code), (False, ErrorCode.TARGETING_KEY_MISSING))

split = {}
for i in range(200):
    d = client.get_boolean_details("checkout", False, EvaluationContext(f"split-{i}"))
    check(f"split-{i} reason", d.reason, Reason.SPLIT)
    split[f"split-{i}"] = d.variant

if failures:
    sys.exit("python OFREP client:\n  " + "\n  ".join(failures))
print(json.dumps(split))
