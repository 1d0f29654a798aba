import { test } from "node:test";
import assert from "node:assert/strict";
import {
  messageDataHeader,
  parseClientBinary,
  parseClientJson,
  pickSubprotocol,
  serviceResponseFrame,
  timeFrame,
} from "./protocol.js";

test("both subprotocol names are served, foxglove.sdk.v1 preferred", () => {
  assert.equal(pickSubprotocol(["foxglove.websocket.v1"]), "foxglove.websocket.v1");
  assert.equal(pickSubprotocol(["foxglove.sdk.v1"]), "foxglove.sdk.v1");
  assert.equal(pickSubprotocol(["foxglove.websocket.v1", "foxglove.sdk.v1"]), "foxglove.sdk.v1");
  assert.equal(pickSubprotocol(["mqtt"]), undefined);
});

test("client JSON ops are checked field by field", () => {
  assert.deepEqual(parseClientJson('{"op":"subscribe","subscriptions":[{"id":1,"channelId":2}]}'), {
    op: "subscribe",
    subscriptions: [{ id: 1, channelId: 2 }],
  });
  assert.deepEqual(parseClientJson('{"op":"getParameters","parameterNames":[],"id":"r1"}'), {
    op: "getParameters",
    parameterNames: [],
    id: "r1",
  });
  assert.throws(
    () => parseClientJson('{"op":"subscribe","subscriptions":[{"id":-1,"channelId":2}]}'),
    /subscribe: subscriptions\[0\]\.id must be an integer from 0 to 4294967295, got -1/,
  );
  assert.throws(
    () => parseClientJson('{"op":"advertise","channels":[{"id":1}]}'),
    /channels\[0\]\.topic must be a string/,
  );
  assert.throws(() => parseClientJson("[1]"), /must be a JSON object with an op field/);
  assert.throws(() => parseClientJson("{"), /not JSON/);
  assert.throws(() => parseClientJson('{"op":"explode"}'), /unknown op "explode"/);
});

test("client binary messages are bounds-checked", () => {
  const data = new Uint8Array([1, 7, 0, 0, 0, 0x7b, 0x7d]);
  const m = parseClientBinary(data);
  assert.equal(m.op, "messageData");
  assert.equal(m.op === "messageData" && m.channelId, 7);
  const enc = new TextEncoder().encode("json");
  const req = new Uint8Array(13 + enc.length + 2);
  const v = new DataView(req.buffer);
  v.setUint8(0, 2);
  v.setUint32(1, 3, true);
  v.setUint32(5, 9, true);
  v.setUint32(9, enc.length, true);
  req.set(enc, 13);
  req.set([0x7b, 0x7d], 13 + enc.length);
  assert.deepEqual(parseClientBinary(req), {
    op: "serviceCallRequest",
    serviceId: 3,
    callId: 9,
    encoding: "json",
    data: new Uint8Array([0x7b, 0x7d]),
  });
  v.setUint32(9, 1000, true);
  assert.throws(() => parseClientBinary(req), /past the end of the message/);
  assert.throws(() => parseClientBinary(new Uint8Array([9])), /unknown binary opcode 0x09/);
  assert.throws(() => parseClientBinary(new Uint8Array([1, 0])), /fewer than the 5 of its header/);
});

test("server frames follow the spec's layout (little-endian)", () => {
  const h = messageDataHeader(5, 1234567890123n);
  const hv = new DataView(h.buffer);
  assert.equal(hv.getUint8(0), 1);
  assert.equal(hv.getUint32(1, true), 5);
  assert.equal(hv.getBigUint64(5, true), 1234567890123n);
  const t = new DataView(timeFrame(42n).buffer);
  assert.equal(t.getUint8(0), 2);
  assert.equal(t.getBigUint64(1, true), 42n);
  const r = serviceResponseFrame(1, 2, "json", new Uint8Array([0x7b, 0x7d]));
  const rv = new DataView(r.buffer);
  assert.deepEqual(
    [rv.getUint8(0), rv.getUint32(1, true), rv.getUint32(5, true), rv.getUint32(9, true)],
    [3, 1, 2, 4],
  );
  assert.equal(new TextDecoder().decode(r.subarray(13)), "json{}");
});
