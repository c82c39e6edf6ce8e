"""Calls livestack through the official Tencent Cloud Python SDK.

Reads one JSON call description on stdin and prints one JSON line per call:
{"ok": <Response without RequestId>, "request_id": ...} or
{"error": {"code", "message", "request_id"}}.

Used by the Rust integration tests (crates/livestack/tests/it); it only
translates, so that what is tested is the SDK's own signing and parsing.
"""
import json
import sys
import time

spec = json.load(sys.stdin)

if spec.get("clock_skew"):
    # Shift the SDK's clock to provoke AuthFailure.SignatureExpire.
    _real_time = time.time
    time.time = lambda: _real_time() + spec["clock_skew"]

from tencentcloud.common import credential  # noqa: E402
from tencentcloud.common.common_client import CommonClient  # noqa: E402
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (  # noqa: E402
    TencentCloudSDKException,
)
from tencentcloud.common.profile.client_profile import ClientProfile  # noqa: E402
from tencentcloud.common.profile.http_profile import HttpProfile  # noqa: E402
import importlib  # noqa: E402

# "service": "live" (default), "cam" or "sts": that service's own typed client.
SERVICES = {"live": ("v20180801", "2018-08-01"), "cam": ("v20190116", "2019-01-16"), "sts": ("v20180813", "2018-08-13")}
service = spec.get("service", "live")
module, default_version = SERVICES[service]
client_module = importlib.import_module(f"tencentcloud.{service}.{module}.{service}_client")
models = importlib.import_module(f"tencentcloud.{service}.{module}.models")

cred = credential.Credential(spec["secret_id"], spec["secret_key"], spec.get("token"))
hp = HttpProfile(
    endpoint=spec["endpoint"],
    protocol="http",
    reqMethod=spec.get("req_method", "POST"),
)
cp = ClientProfile(
    httpProfile=hp,
    signMethod=spec.get("sign_method", "TC3-HMAC-SHA256"),
    language=spec.get("language", "zh-CN"),
)
cp.unsignedPayload = bool(spec.get("unsigned_payload"))
region = spec.get("region", "ap-guangzhou")
action = spec.get("action")
params = spec.get("params", {})
client_class = next(v for k, v in vars(client_module).items() if k.lower() == f"{service}client")
live = client_class(cred, region, cp)
common = CommonClient(service, spec.get("version") or default_version, cred, region, profile=cp)


def call(action=action, params=params):
    typed = (
        hasattr(models, action + "Request")
        and not spec.get("raw")
        and not spec.get("version")
        and not spec.get("skip_sign")
    )
    if typed:
        req = getattr(models, action + "Request")()
        req.from_json_string(json.dumps(params))
        resp = json.loads(getattr(live, action)(req).to_json_string())
    else:
        options = {"SkipSign": True} if spec.get("skip_sign") else None
        resp = common.call_json(action, params, options=options)["Response"]
    request_id = resp.pop("RequestId", None)
    return {"ok": resp, "request_id": request_id}


# "calls": a list of {"action", "params"} run in order in this one process
# (cheaper than a process per call); otherwise one call, "repeat" times.
calls = spec.get("calls") or [{"action": action, "params": params}] * int(spec.get("repeat", 1))
for c in calls:
    try:
        out = call(c["action"], c.get("params", {}))
    except TencentCloudSDKException as e:
        out = {
            "error": {
                "code": e.get_code(),
                "message": e.get_message(),
                "request_id": e.get_request_id(),
            }
        }
    print(json.dumps(out, ensure_ascii=False), flush=True)
