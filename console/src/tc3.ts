// TC3-HMAC-SHA256 signing of Tencent Cloud API 3.0 requests, in the
// browser: the console calls the same signed API as every other client,
// so it sees exactly what its key may see. Pure TypeScript hashes
// (@noble/hashes) rather than WebCrypto, which browsers offer only to
// secure contexts (a console opened over plain HTTP on a LAN address is
// not one).
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js";

export interface Credentials {
  secretId: string;
  secretKey: string;
  /** A temporary key's token (STS), sent as X-TC-Token. */
  token?: string;
}

/** A call's answer: `Response` without its `RequestId`, or the error. */
export class ApiError extends Error {
  constructor(
    public code: string,
    message: string,
    public requestId: string,
  ) {
    super(`${code}: ${message}`);
  }
}

const hex = (b: Uint8Array) => bytesToHex(b);

/** The headers of a signed POST of `payload` to `host`. */
export function sign(
  creds: Credentials,
  service: string,
  host: string,
  action: string,
  version: string,
  payload: string,
  timestamp: number,
): Record<string, string> {
  const date = new Date(timestamp * 1000).toISOString().slice(0, 10);
  const contentType = "application/json; charset=utf-8";
  const signedHeaders = "content-type;host;x-tc-action";
  const canonical = [
    "POST",
    "/",
    "",
    `content-type:${contentType}\nhost:${host}\nx-tc-action:${action.toLowerCase()}\n`,
    signedHeaders,
    hex(sha256(utf8ToBytes(payload))),
  ].join("\n");
  const scope = `${date}/${service}/tc3_request`;
  const toSign = ["TC3-HMAC-SHA256", String(timestamp), scope, hex(sha256(utf8ToBytes(canonical)))].join("\n");
  const kDate = hmac(sha256, utf8ToBytes("TC3" + creds.secretKey), utf8ToBytes(date));
  const kService = hmac(sha256, kDate, utf8ToBytes(service));
  const kSigning = hmac(sha256, kService, utf8ToBytes("tc3_request"));
  const signature = hex(hmac(sha256, kSigning, utf8ToBytes(toSign)));
  const headers: Record<string, string> = {
    "Content-Type": contentType,
    "X-TC-Action": action,
    "X-TC-Version": version,
    "X-TC-Timestamp": String(timestamp),
    // The console is in English: so are the API's messages.
    "X-TC-Language": "en-US",
    Authorization: `TC3-HMAC-SHA256 Credential=${creds.secretId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
  };
  if (creds.token) headers["X-TC-Token"] = creds.token;
  return headers;
}

/** Calls `action` of the Live API (2018-08-01) on this page's origin. */
export async function call<T = any>(creds: Credentials, action: string, params: object = {}): Promise<T> {
  const payload = JSON.stringify(params);
  const headers = sign(creds, "live", location.host, action, "2018-08-01", payload, Math.floor(Date.now() / 1000));
  const res = await fetch("/", { method: "POST", headers, body: payload });
  const body = await res.json();
  const r = body.Response ?? {};
  if (r.Error) throw new ApiError(r.Error.Code, r.Error.Message, r.RequestId ?? "");
  return r as T;
}
