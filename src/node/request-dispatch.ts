/**
 * Serving a service request that came over the data plane: find the server, check the type,
 * decode and validate the request, run the handler, validate and encode its reply. Every failure
 * becomes an error reply with a code the caller turns into the right error class.
 */
import { MyelinError } from "../errors.js";
import { decodeFrames, encodeFrames } from "../codec/index.js";
import type { PeerInfo, ReplyResult } from "../transport/data-server.js";
import type { RequestHeader } from "../transport/frame.js";
import type { ServiceServer } from "./service.js";
import type { AccessPolicy } from "./access-policy.js";

/** Serves one request of `peer` with the node's `services`; never throws. */
export async function dispatchRequest(
  nodeName: string,
  services: ReadonlyMap<string, ServiceServer<unknown, unknown>>,
  blobThreshold: number,
  peer: PeerInfo,
  h: RequestHeader,
  parts: Buffer[],
  access: AccessPolicy,
): Promise<ReplyResult> {
  // Before anything else (even "no such service"): an unauthorized caller learns nothing.
  const d = access.check(peer.identity, "call", h.service);
  if (!d.allowed) {
    const srv = services.get(h.service);
    if (srv !== undefined) srv.refused++;
    return {
      ok: false,
      error: { code: "ERR_NOT_AUTHORIZED", message: `node ${nodeName} refused the call: ${d.reason}` },
    };
  }
  const srv = services.get(h.service);
  if (srv === undefined)
    return {
      ok: false,
      error: { code: "ERR_NO_SERVER", message: `node ${nodeName} does not serve ${h.service}` },
    };
  if (srv.type.name !== h.type) {
    return {
      ok: false,
      error: {
        code: "ERR_TYPE_MISMATCH",
        message: `service ${h.service} has type ${srv.type.name} (node ${nodeName}); the client used ${h.type}`,
      },
    };
  }
  let req: unknown;
  try {
    req = decodeFrames(parts);
  } catch (err) {
    srv.failed++;
    return {
      ok: false,
      error: { code: "ERR_DECODE", message: `request could not be decoded: ${(err as Error).message}` },
    };
  }
  const v = srv.type.request.validate(req);
  if (!v.ok) {
    srv.failed++;
    return {
      ok: false,
      error: {
        code: "ERR_VALIDATION",
        message: v.errors.map((e) => `${e.path || "(request)"}: ${e.reason}`).join("; "),
      },
    };
  }
  try {
    const res = await srv.handler(req, {
      caller: peer.node,
      identity: peer.identity,
      timeoutMs: h.timeoutMs,
    });
    const rv = srv.type.response.validate(res);
    if (!rv.ok) {
      srv.failed++;
      const detail = rv.errors.map((e) => `${e.path || "(reply)"}: ${e.reason}`).join("; ");
      return {
        ok: false,
        error: {
          code: "ERR_SERVICE_FAILED",
          message: `the handler returned an invalid ${srv.type.response.name}: ${detail}`,
        },
      };
    }
    srv.served++;
    return { ok: true, frames: encodeFrames(res, blobThreshold) };
  } catch (err) {
    srv.failed++;
    return {
      ok: false,
      error: {
        // A handler's MyelinError keeps its code (ERR_STORAGE, ERR_BACKPRESSURE, …) for the caller.
        code: err instanceof MyelinError ? err.code : "ERR_SERVICE_FAILED",
        message: (err as Error)?.message ?? String(err),
      },
    };
  }
}
