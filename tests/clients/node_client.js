// Calls livestack through the official Tencent Cloud Node.js SDK.
//
// Reads one JSON call description on stdin and prints one JSON line per call:
// {"ok": <Response without RequestId>, "request_id"} or
// {"error": {"code", "message", "request_id"}}. Used by the Rust integration
// tests; it only translates, so that the SDK's own signing is what is tested.
"use strict";
// "service": "live" (default), "cam" or "sts": that service's own client.
const VERSIONS = { live: "v20180801", cam: "v20190116", sts: "v20180813" };

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const spec = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const profile = {
    httpProfile: {
      endpoint: spec.endpoint,
      protocol: "http://",
      reqMethod: spec.req_method || "POST",
    },
  };
  if (spec.sign_method) profile.signMethod = spec.sign_method;
  if (spec.language) profile.language = spec.language;
  const credential = { secretId: spec.secret_id, secretKey: spec.secret_key };
  if (spec.token) credential.token = spec.token;
  const service = spec.service || "live";
  const sdk = require(`tencentcloud-sdk-nodejs/tencentcloud/services/${service}`)[service];
  const client = new sdk[VERSIONS[service]].Client({
    credential,
    region: spec.region === undefined ? "ap-guangzhou" : spec.region,
    profile,
  });
  const repeat = spec.repeat || 1;
  for (let i = 0; i < repeat; i++) {
    let out;
    try {
      const resp = typeof client[spec.action] === "function" && !spec.raw
        ? await client[spec.action](spec.params || {})
        : await client.request(spec.action, spec.params || {});
      const requestId = resp.RequestId;
      delete resp.RequestId;
      out = { ok: resp, request_id: requestId };
    } catch (e) {
      out = { error: { code: e.code || null, message: e.message, request_id: e.requestId || null } };
    }
    process.stdout.write(JSON.stringify(out) + "\n");
  }
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
  process.exit(1);
});
