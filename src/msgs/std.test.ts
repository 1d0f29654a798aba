import assert from "node:assert/strict";
import { test } from "node:test";
import {
  builtin_interfaces,
  diagnostic_msgs,
  DiagnosticLevel,
  example_interfaces,
  geometry_msgs,
  isMessageType,
  LogLevel,
  rcl_interfaces,
  sensor_msgs,
  std_msgs,
  std_srvs,
  vision_msgs,
  type AnyField,
  type MessageOf,
  type MessageType,
} from "./index.js";

/** Every message type of the standard library, service parts included. */
function allStdTypes(): MessageType<unknown>[] {
  const out: MessageType<unknown>[] = [];
  for (const ns of [
    builtin_interfaces,
    std_msgs,
    geometry_msgs,
    sensor_msgs,
    vision_msgs,
    diagnostic_msgs,
    rcl_interfaces,
  ]) {
    for (const type of Object.values(ns)) out.push(type as MessageType<unknown>);
  }
  for (const ns of [example_interfaces, std_srvs]) {
    for (const s of Object.values(ns))
      out.push(s.request as MessageType<unknown>, s.response as MessageType<unknown>);
  }
  return out;
}

test("every standard type's create() value is valid", () => {
  const types = allStdTypes();
  assert.ok(types.length > 70, `${types.length} types`);
  for (const type of types) {
    assert.ok(isMessageType(type), type.name);
    const v = type.create();
    assert.deepEqual(type.validate(v), { ok: true }, type.name);
    assert.equal(type.jsonSchema.title, type.name);
  }
});

test("field names follow ROS 2 common_interfaces", () => {
  const names = (t: MessageType<unknown>) => Object.keys(t.fields);
  assert.deepEqual(names(std_msgs.Header), ["stamp", "frame_id"]);
  assert.deepEqual(names(sensor_msgs.Image), [
    "header",
    "height",
    "width",
    "encoding",
    "is_bigendian",
    "step",
    "data",
  ]);
  assert.deepEqual(names(sensor_msgs.CameraInfo), [
    "header",
    "height",
    "width",
    "distortion_model",
    "d",
    "k",
    "r",
    "p",
    "binning_x",
    "binning_y",
    "roi",
  ]);
  assert.deepEqual(names(sensor_msgs.PointCloud2), [
    "header",
    "height",
    "width",
    "fields",
    "is_bigendian",
    "point_step",
    "row_step",
    "data",
    "is_dense",
  ]);
  assert.deepEqual(names(vision_msgs.Detection2D), ["header", "results", "bbox", "id"]);
  assert.deepEqual(names(geometry_msgs.TransformStamped), ["header", "child_frame_id", "transform"]);
  assert.deepEqual(names(rcl_interfaces.Log), ["stamp", "level", "name", "msg", "file", "function", "line"]);
  assert.equal((sensor_msgs.CameraInfo.fields.p as AnyField & { length?: number }).length, 12);
  assert.equal(
    (geometry_msgs.PoseWithCovariance.fields.covariance as AnyField & { length?: number }).length,
    36,
  );
  assert.equal((sensor_msgs.Imu.fields.orientation_covariance as AnyField & { length?: number }).length, 9);
});

test("defaults: identity quaternion, enums, fixed arrays", () => {
  assert.deepEqual(geometry_msgs.Quaternion.create(), { x: 0, y: 0, z: 0, w: 1 });
  assert.equal(geometry_msgs.Pose.create().orientation.w, 1);
  assert.equal(diagnostic_msgs.DiagnosticStatus.create().level, DiagnosticLevel.OK);
  assert.equal(rcl_interfaces.Log.create().level, LogLevel.DEBUG);
  assert.equal(geometry_msgs.PoseWithCovariance.create().covariance.length, 36);
  const img: MessageOf<typeof sensor_msgs.Image> = sensor_msgs.Image.create({ width: 2 });
  assert.ok(img.data instanceof Uint8Array);
  assert.equal(sensor_msgs.Image.blobFields, true);
  assert.equal(sensor_msgs.PointCloud2.blobFields, true);
  assert.equal(geometry_msgs.Twist.blobFields, false);
});

test("standard namespaces support assertion narrowing", () => {
  const v: unknown = geometry_msgs.Twist.create({ linear: { x: 1 } });
  geometry_msgs.Twist.assert(v, "/cmd_vel");
  assert.equal(v.linear.x, 1); // narrowed: no cast needed
  const q: unknown = { a: 1n, b: 2n };
  example_interfaces.AddTwoInts.request.assert(q);
  assert.equal(q.a + q.b, 3n);
  assert.throws(
    () => geometry_msgs.Twist.assert({ linear: {} }, "/cmd_vel"),
    /^ValidationError: \/cmd_vel: invalid geometry_msgs\/Twist: linear\.x: missing required field/,
  );
});
