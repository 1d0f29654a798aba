/** The node record's optional CURVE key in the control protocol: carried, optional, checked. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateCurveKeyPair } from "../transport/curve-key.js";
import { decodeNodeToHub, encodeControl, type NodeRecord } from "./control-protocol.js";

const base: NodeRecord = {
  id: "n-1",
  name: "n",
  pid: 1,
  host: "h",
  process: "p",
  endpoint: "tcp://10.0.0.5:4000",
  startedAt: 0,
  pubs: [],
  subs: [],
  services: [],
};

test("a record's key survives the wire; a record without one (an older node) still decodes", () => {
  const key = generateCurveKeyPair().publicKey;
  const withKey = decodeNodeToHub(encodeControl({ v: 1, t: "register", node: { ...base, key }, req: 1 }));
  assert.equal(withKey.t === "register" ? withKey.node.key : undefined, key);
  const without = decodeNodeToHub(encodeControl({ v: 1, t: "register", node: base, req: 2 }));
  assert.equal(without.t === "register" ? "key" in without.node : true, false);
});

test("a malformed key is a decode error naming the field", () => {
  for (const key of ["short", 42, "~".repeat(40)]) {
    assert.throws(
      () =>
        decodeNodeToHub(
          encodeControl({ v: 1, t: "register", node: { ...base, key: key as string }, req: 1 }),
        ),
      /node\.key must be|key must be/,
    );
  }
});
