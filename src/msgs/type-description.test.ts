import { test } from "node:test";
import assert from "node:assert/strict";
import { describeMessageType, messageTypeFromDescription } from "./type-description.js";
import { defineMessage, t, typeSignature } from "./schema.js";
import { lookupType } from "./registry.js";
import "./index.js";

test("a type rebuilt from its description (cloned as a worker would get it) has the same definition", () => {
  const Inner = defineMessage("desc_test/Inner", { x: t.f64({ default: 1.5 }), tag: t.string() });
  const Outer = defineMessage("desc_test/Outer", {
    stamp: t.time(),
    wait: t.duration(),
    id: t.u64({ default: 7n }),
    level: t.enum({ OK: 0, WARN: 1 }),
    inner: t.msg(Inner),
    list: t.array(t.msg(Inner), { maxLength: 4 }),
    fixed: t.array(t.i16(), { length: 3 }),
    note: t.optional(t.string()),
    blob: t.bytes(),
  });
  const d = structuredClone(describeMessageType(Outer));
  const again = messageTypeFromDescription(d);
  assert.equal(typeSignature(again), typeSignature(Outer));
  const msg = Outer.create({ note: "n", list: [{ tag: "a" }] });
  assert.ok(again.validate(msg).ok);
  assert.equal(again.validate({ ...msg, level: 5 }).ok, false);
  assert.equal(again.validate({ ...msg, fixed: [1, 2] }).ok, false);
});

test("a registered type with the same definition is used as it is", () => {
  const Header = lookupType("std_msgs/Header")!;
  assert.equal(messageTypeFromDescription(describeMessageType(Header)), Header);
});

test("a description that lacks a nested type is refused with a clear error", () => {
  assert.throws(
    () =>
      messageTypeFromDescription({ root: "a/B", types: { "a/B": [["c", { kind: "msg", type: "a/C" }]] } }),
    (e: Error & { code?: string }) =>
      e.code === "ERR_INVALID_ARGUMENT" && /lacks nested type a\/C/.test(e.message),
  );
});
