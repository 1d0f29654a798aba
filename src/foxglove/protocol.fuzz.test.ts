/**
 * Property tests of the Foxglove protocol parsers (docs/fuzzing.md): any bytes or text a client
 * sends either parse or are a MyelinError ERR_PROTOCOL saying what is wrong, never another error;
 * what the parsers accept keeps its fields.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { bytes, check, configValue, parseOrCoded } from "../../test/fuzz-helpers.js";
import { CLIENT_BINARY, parseClientBinary, parseClientJson } from "./protocol.js";

const OPS = [
  "subscribe",
  "unsubscribe",
  "advertise",
  "unadvertise",
  "getParameters",
  "setParameters",
  "subscribeParameterUpdates",
  "unsubscribeParameterUpdates",
  "subscribeConnectionGraph",
  "unsubscribeConnectionGraph",
  "fetchAsset",
];
const FIELDS = [
  "op",
  "subscriptions",
  "subscriptionIds",
  "channels",
  "channelIds",
  "parameterNames",
  "parameters",
  "id",
  "channelId",
  "topic",
  "encoding",
  "schemaName",
  "schema",
  "schemaEncoding",
  "name",
  "value",
  "type",
  "uri",
  "requestId",
];

test("binary messages from a client: a value or ERR_PROTOCOL", () => {
  check("parseClientBinary", 3000, [bytes(64)], (b) => {
    parseOrCoded("parseClientBinary", ["ERR_PROTOCOL"], b, () => parseClientBinary(b));
  });
  // Well-formed service call requests keep their fields.
  check(
    "service call request",
    500,
    [fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff }), fc.string({ maxLength: 8 }), bytes(32)],
    (serviceId, callId, encoding, data) => {
      const enc = new TextEncoder().encode(encoding);
      const b = new Uint8Array(13 + enc.length + data.length);
      const v = new DataView(b.buffer);
      v.setUint8(0, CLIENT_BINARY.SERVICE_CALL_REQUEST);
      v.setUint32(1, serviceId, true);
      v.setUint32(5, callId, true);
      v.setUint32(9, enc.length, true);
      b.set(enc, 13);
      b.set(data, 13 + enc.length);
      assert.deepEqual(parseClientBinary(b), { op: "serviceCallRequest", serviceId, callId, encoding, data });
    },
  );
});

test("JSON text from a client: a value or ERR_PROTOCOL", () => {
  check("parseClientJson (any text)", 2000, [fc.string({ maxLength: 64 })], (text) => {
    parseOrCoded("parseClientJson", ["ERR_PROTOCOL"], text, () => parseClientJson(text));
  });
  const op = fc.record(
    { op: fc.constantFrom(...OPS), rest: configValue(FIELDS, 4) },
    { noNullPrototype: true },
  );
  check("parseClientJson (ops of the wrong shape)", 3000, [op], ({ op: name, rest }) => {
    const value =
      typeof rest === "object" && rest !== null && !Array.isArray(rest)
        ? { ...rest, op: name }
        : { op: name };
    let text: string;
    try {
      text = JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? Number(v) : v));
    } catch {
      return;
    }
    parseOrCoded("parseClientJson", ["ERR_PROTOCOL"], text, () => parseClientJson(text));
  });
});
