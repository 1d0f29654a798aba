/**
 * The Foxglove WebSocket protocol on the wire (foxglove/ws-protocol, `docs/spec.md`): the
 * subprotocol names, the checks of what clients send (JSON ops and binary messages) and the
 * binary frames the server sends. Sans-IO: bytes and values in, values and bytes out; a message
 * that does not fit the protocol is a MyelinError `ERR_PROTOCOL` saying what is wrong, never a
 * crash. The message shapes are those of `@foxglove/ws-protocol`.
 */
import type {
  ClientChannel,
  GetParameters,
  Parameter,
  SetParameters,
  Subscribe,
  SubscribeParameterUpdates,
  Unsubscribe,
  UnsubscribeParameterUpdates,
} from "@foxglove/ws-protocol";
import { MyelinError } from "../errors.js";

/**
 * The subprotocols served, in the order the server prefers them: `foxglove.sdk.v1` (current
 * foxglove_bridge and the Foxglove SDK) and `foxglove.websocket.v1` (ws-protocol, Lichtblick);
 * the messages are the same.
 */
export const FOXGLOVE_SUBPROTOCOLS = ["foxglove.sdk.v1", "foxglove.websocket.v1"] as const;

/** Opcodes of the binary messages the server sends. */
export const SERVER_BINARY = { MESSAGE_DATA: 1, TIME: 2, SERVICE_CALL_RESPONSE: 3 } as const;
/** Opcodes of the binary messages a client sends. */
export const CLIENT_BINARY = { MESSAGE_DATA: 1, SERVICE_CALL_REQUEST: 2 } as const;
/** Levels of a status message. */
export const STATUS_LEVEL = { INFO: 0, WARNING: 1, ERROR: 2 } as const;

/** A JSON op a client sends. */
export type ClientJsonOp =
  | Subscribe
  | Unsubscribe
  | { op: "advertise"; channels: ClientChannel[] }
  | { op: "unadvertise"; channelIds: number[] }
  | GetParameters
  | SetParameters
  | SubscribeParameterUpdates
  | UnsubscribeParameterUpdates
  | { op: "subscribeConnectionGraph" }
  | { op: "unsubscribeConnectionGraph" }
  | { op: "fetchAsset"; uri: string; requestId: number };

/** A binary message a client sends. */
export type ClientBinary =
  | { op: "messageData"; channelId: number; data: Uint8Array }
  | { op: "serviceCallRequest"; serviceId: number; callId: number; encoding: string; data: Uint8Array };

/** Picks the subprotocol of a connection from those the client offers, or undefined when none is served. */
export function pickSubprotocol(offered: Iterable<string>): string | undefined {
  const set = new Set(offered);
  return FOXGLOVE_SUBPROTOCOLS.find((p) => set.has(p));
}

type Obj = Record<string, unknown>;

/** A client message that does not follow the protocol; the message says what and where. */
function violation(msg: string): MyelinError {
  return new MyelinError("ERR_PROTOCOL", msg);
}

function fail(op: string, msg: string): never {
  throw violation(`${op}: ${msg}`);
}
function u32(v: unknown, op: string, field: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff)
    fail(op, `${field} must be an integer from 0 to 4294967295, got ${JSON.stringify(v) ?? String(v)}`);
  return v;
}
function str(v: unknown, op: string, field: string): string {
  if (typeof v !== "string") fail(op, `${field} must be a string, got ${JSON.stringify(v) ?? String(v)}`);
  return v;
}
function arr(v: unknown, op: string, field: string): unknown[] {
  if (!Array.isArray(v)) fail(op, `${field} must be an array`);
  return v;
}
function obj(v: unknown, op: string, field: string): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail(op, `${field} must be an object`);
  return v as Obj;
}
function optStr(v: unknown, op: string, field: string): string | undefined {
  return v === undefined ? undefined : str(v, op, field);
}

/** The JSON value of a parameter as clients send it (no functions, no cycles: it came from JSON). */
function parameter(v: unknown, op: string, field: string): Parameter {
  const p = obj(v, op, field);
  const name = str(p["name"], op, `${field}.name`);
  const type = p["type"];
  if (type !== undefined && type !== "byte_array" && type !== "float64" && type !== "float64_array")
    fail(op, `${field}.type must be byte_array, float64 or float64_array when given`);
  const out: Parameter = { name, value: p["value"] as Parameter["value"] };
  if (type !== undefined) out.type = type;
  return out;
}

/**
 * Checks a JSON text message of a client.
 * @throws MyelinError ERR_PROTOCOL naming the op and the field
 */
export function parseClientJson(text: string): ClientJsonOp {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw violation("a text message is not JSON: each must be a JSON object with an op field");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw violation("a text message must be a JSON object with an op field");
  const m = v as Obj;
  const op = m["op"];
  if (typeof op !== "string") throw violation("a text message has no op field (a string)");
  switch (op) {
    case "subscribe":
      return {
        op,
        subscriptions: arr(m["subscriptions"], op, "subscriptions").map((s, i) => {
          const o = obj(s, op, `subscriptions[${i}]`);
          return {
            id: u32(o["id"], op, `subscriptions[${i}].id`),
            channelId: u32(o["channelId"], op, `subscriptions[${i}].channelId`),
          };
        }),
      };
    case "unsubscribe":
      return {
        op,
        subscriptionIds: arr(m["subscriptionIds"], op, "subscriptionIds").map((x, i) =>
          u32(x, op, `subscriptionIds[${i}]`),
        ),
      };
    case "advertise":
      return {
        op,
        channels: arr(m["channels"], op, "channels").map((c, i) => {
          const o = obj(c, op, `channels[${i}]`);
          const ch = {
            id: u32(o["id"], op, `channels[${i}].id`),
            topic: str(o["topic"], op, `channels[${i}].topic`),
            encoding: str(o["encoding"], op, `channels[${i}].encoding`),
            schemaName: str(o["schemaName"], op, `channels[${i}].schemaName`),
          };
          const schema = optStr(o["schema"], op, `channels[${i}].schema`);
          const schemaEncoding = optStr(o["schemaEncoding"], op, `channels[${i}].schemaEncoding`);
          return schema !== undefined && schemaEncoding !== undefined
            ? { ...ch, schema, schemaEncoding }
            : ch;
        }),
      };
    case "unadvertise":
      return {
        op,
        channelIds: arr(m["channelIds"], op, "channelIds").map((x, i) => u32(x, op, `channelIds[${i}]`)),
      };
    case "getParameters": {
      const id = optStr(m["id"], op, "id");
      const parameterNames = arr(m["parameterNames"] ?? [], op, "parameterNames").map((x, i) =>
        str(x, op, `parameterNames[${i}]`),
      );
      return id === undefined ? { op, parameterNames } : { op, parameterNames, id };
    }
    case "setParameters": {
      const id = optStr(m["id"], op, "id");
      const parameters = arr(m["parameters"], op, "parameters").map((p, i) =>
        parameter(p, op, `parameters[${i}]`),
      );
      return id === undefined ? { op, parameters } : { op, parameters, id };
    }
    case "subscribeParameterUpdates":
    case "unsubscribeParameterUpdates":
      return {
        op,
        parameterNames: arr(m["parameterNames"] ?? [], op, "parameterNames").map((x, i) =>
          str(x, op, `parameterNames[${i}]`),
        ),
      };
    case "subscribeConnectionGraph":
    case "unsubscribeConnectionGraph":
      return { op };
    case "fetchAsset":
      return { op, uri: str(m["uri"], op, "uri"), requestId: u32(m["requestId"], op, "requestId") };
    default:
      throw violation(`unknown op ${JSON.stringify(op)}`);
  }
}

/**
 * Checks a binary message of a client (little-endian, see the spec).
 * @throws MyelinError ERR_PROTOCOL saying what is wrong
 */
export function parseClientBinary(bytes: Uint8Array): ClientBinary {
  if (bytes.byteLength < 1) throw violation("an empty binary message has no opcode");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const opcode = view.getUint8(0);
  switch (opcode) {
    case CLIENT_BINARY.MESSAGE_DATA:
      if (bytes.byteLength < 5)
        throw violation(`message data: ${bytes.byteLength} bytes, fewer than the 5 of its header`);
      return { op: "messageData", channelId: view.getUint32(1, true), data: bytes.subarray(5) };
    case CLIENT_BINARY.SERVICE_CALL_REQUEST: {
      if (bytes.byteLength < 13)
        throw violation(`service call request: ${bytes.byteLength} bytes, fewer than the 13 of its header`);
      const encodingLength = view.getUint32(9, true);
      if (13 + encodingLength > bytes.byteLength)
        throw violation(
          `service call request: the encoding is said to be ${encodingLength} bytes long, past the end of the message`,
        );
      return {
        op: "serviceCallRequest",
        serviceId: view.getUint32(1, true),
        callId: view.getUint32(5, true),
        encoding: new TextDecoder().decode(bytes.subarray(13, 13 + encodingLength)),
        data: bytes.subarray(13 + encodingLength),
      };
    }
    default:
      throw violation(
        `unknown binary opcode 0x${opcode.toString(16).padStart(2, "0")}; clients send 0x01 (message data) and 0x02 (service call request)`,
      );
  }
}

/** The 13-byte header of a Message Data frame; the payload follows it in the same WebSocket message. */
export function messageDataHeader(subscriptionId: number, timestampNs: bigint): Uint8Array {
  const b = new Uint8Array(13);
  const v = new DataView(b.buffer);
  v.setUint8(0, SERVER_BINARY.MESSAGE_DATA);
  v.setUint32(1, subscriptionId, true);
  v.setBigUint64(5, timestampNs, true);
  return b;
}

/** A Time frame. */
export function timeFrame(timestampNs: bigint): Uint8Array {
  const b = new Uint8Array(9);
  const v = new DataView(b.buffer);
  v.setUint8(0, SERVER_BINARY.TIME);
  v.setBigUint64(1, timestampNs, true);
  return b;
}

/** A Service Call Response frame. */
export function serviceResponseFrame(
  serviceId: number,
  callId: number,
  encoding: string,
  data: Uint8Array,
): Uint8Array {
  const enc = new TextEncoder().encode(encoding);
  const b = new Uint8Array(13 + enc.byteLength + data.byteLength);
  const v = new DataView(b.buffer);
  v.setUint8(0, SERVER_BINARY.SERVICE_CALL_RESPONSE);
  v.setUint32(1, serviceId, true);
  v.setUint32(5, callId, true);
  v.setUint32(9, enc.byteLength, true);
  b.set(enc, 13);
  b.set(data, 13 + enc.byteLength);
  return b;
}

/** Wall-clock time now, in ns since the epoch (the server's one clock for time and message data). */
export function nowNs(): bigint {
  const ms = performance.timeOrigin + performance.now();
  return BigInt(Math.floor(ms)) * 1_000_000n + BigInt(Math.floor((ms % 1) * 1e6));
}
