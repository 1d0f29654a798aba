import assert from "node:assert/strict";
import { test } from "node:test";
import { TypeMismatchError } from "../errors.js";
import { listServices, listTypes, lookupService, lookupType, registerType } from "./registry.js";
import { defineMessage, defineService, t } from "./schema.js";
import "./index.js";

test("the standard library registers itself", () => {
  const names = listTypes();
  for (const n of [
    "builtin_interfaces/Time",
    "std_msgs/Header",
    "geometry_msgs/Twist",
    "sensor_msgs/Image",
    "vision_msgs/Detection2DArray",
    "diagnostic_msgs/DiagnosticArray",
    "rcl_interfaces/Log",
    "example_interfaces/AddTwoInts_Request",
    "std_srvs/Trigger_Response",
  ]) {
    assert.ok(names.includes(n), n);
    assert.equal(lookupType(n)?.name, n);
  }
  assert.deepEqual([...names].sort(), names, "sorted");
  assert.ok(listServices().includes("std_srvs/SetBool"));
  assert.equal(
    lookupService("example_interfaces/AddTwoInts")?.request.name,
    "example_interfaces/AddTwoInts_Request",
  );
  assert.equal(lookupType("nope/Nope"), undefined);
  assert.equal(lookupService("nope/Nope"), undefined);
});

test("re-registering is a no-op; a different definition under the same name is refused", () => {
  const A = defineMessage("test_registry/A", { x: t.f64() });
  registerType(A);
  registerType(A);
  assert.equal(lookupType("test_registry/A"), A);
  // an identical second definition (e.g. a second copy of a module) is accepted and the first one kept
  registerType(defineMessage("test_registry/A", { x: t.f64() }));
  assert.equal(lookupType("test_registry/A"), A);
  assert.throws(
    () => registerType(defineMessage("test_registry/A", { x: t.f32() })),
    (e: unknown) =>
      e instanceof TypeMismatchError && e.code === "ERR_TYPE_MISMATCH" && /test_registry\/A/.test(e.message),
  );
  assert.equal(lookupType("test_registry/A"), A);
});

test("nested types and service parts are registered", () => {
  const Inner = defineMessage("test_registry/Inner", { y: t.u8() });
  const Outer = defineMessage("test_registry/Outer", { i: t.optional(t.array(t.msg(Inner))) });
  registerType(Outer);
  assert.equal(lookupType("test_registry/Inner"), Inner);
  const S = defineService("test_registry/S", { q: t.msg(Inner) }, { r: t.bool() });
  registerType(S);
  registerType(S);
  assert.equal(lookupService("test_registry/S"), S);
  assert.equal(lookupType("test_registry/S_Request"), S.request);
  assert.equal(lookupType("test_registry/S_Response"), S.response);
  assert.throws(() => registerType(defineService("test_registry/S", { q: t.u8() }, { r: t.bool() })), {
    code: "ERR_TYPE_MISMATCH",
  });
  assert.throws(() => registerType(defineMessage("test_registry/Inner", { y: t.u16() })), {
    code: "ERR_TYPE_MISMATCH",
  });
});

test("registerType refuses things that are not types", () => {
  assert.throws(() => registerType({ name: "x/Y" } as never), { code: "ERR_INVALID_ARGUMENT" });
  assert.throws(() => registerType(null as never), { code: "ERR_INVALID_ARGUMENT" });
});
