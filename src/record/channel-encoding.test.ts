// Channel encodings: CDR bytes decode with the viewers' own ROS 2 reader (@foxglove/rosmsg2-serialization
// over the ros2msg text, parsed by @foxglove/rosmsg), and round-trip through our decoder; JSON keeps
// every value, with a schema the viewers' JSON Schema reader accepts (only `type`-based keywords).
import assert from "node:assert/strict";
import { test } from "node:test";
import { parse as parseRosMsg } from "@foxglove/rosmsg";
import { MessageReader, MessageWriter } from "@foxglove/rosmsg2-serialization";
import { DecodeError } from "../errors.js";
import { defineMessage, sensor_msgs, std_msgs, t, type JsonSchema, type MessageType } from "../msgs/index.js";
import { CDR_TYPES, channelEncodingForSchema, channelEncodingOf } from "./channel-encoding.js";

const text = (b: Uint8Array): string => Buffer.from(b).toString("utf8");

function image() {
  const data = new Uint8Array(4 * 3 * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  return sensor_msgs.Image.create({
    header: { stamp: { sec: 1700000000, nanosec: 123456789 }, frame_id: "camera_front" },
    height: 3,
    width: 4,
    encoding: "rgb8",
    is_bigendian: 0,
    step: 12,
    data,
  });
}

function cloud() {
  const data = new Uint8Array(2 * 16);
  new Float32Array(data.buffer).set([1, 2, 3, 0.5, -1, -2, -3, 0.25]);
  return sensor_msgs.PointCloud2.create({
    header: { stamp: { sec: 5, nanosec: 6 }, frame_id: "lidar" },
    height: 1,
    width: 2,
    fields: ["x", "y", "z", "intensity"].map((name, i) => ({ name, offset: i * 4, datatype: 7, count: 1 })),
    is_bigendian: false,
    point_step: 16,
    row_step: 32,
    data,
    is_dense: true,
  });
}

/** Plain objects with Uint8Array (not Buffer) views, for deepEqual. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return new Uint8Array(v);
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === "object" && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

test("the image and point cloud types are ros2msg + cdr under their ROS 2 names", () => {
  for (const name of CDR_TYPES) {
    const all = [
      sensor_msgs.Image,
      sensor_msgs.CompressedImage,
      sensor_msgs.PointCloud2,
    ] as MessageType<unknown>[];
    const type = all.find((x) => x.name === name)!;
    const enc = channelEncodingOf(type);
    assert.equal(enc.schemaEncoding, "ros2msg");
    assert.equal(enc.messageEncoding, "cdr");
    assert.equal(enc.schemaName, name.replace("/", "/msg/"));
    assert.equal(channelEncodingOf(type), enc, "built once per type");
  }
  assert.equal(
    text(channelEncodingOf(sensor_msgs.Image).schemaData),
    [
      "std_msgs/Header header",
      "uint32 height",
      "uint32 width",
      "string encoding",
      "uint8 is_bigendian",
      "uint32 step",
      "uint8[] data",
      "=".repeat(80),
      "MSG: std_msgs/Header",
      "builtin_interfaces/Time stamp",
      "string frame_id",
      "=".repeat(80),
      "MSG: builtin_interfaces/Time",
      "int32 sec",
      "uint32 nanosec",
    ].join("\n"),
  );
});

test("CDR messages decode with the viewers' ROS 2 reader, and theirs with ours", () => {
  const cases = [
    [sensor_msgs.Image, image()],
    [
      sensor_msgs.CompressedImage,
      sensor_msgs.CompressedImage.create({
        header: { frame_id: "c" },
        format: "jpeg",
        data: new Uint8Array([255, 216, 255]),
      }),
    ],
    [sensor_msgs.PointCloud2, cloud()],
  ] as const;
  for (const [type, msg] of cases) {
    const enc = channelEncodingOf(type as typeof sensor_msgs.Image);
    const defs = parseRosMsg(text(enc.schemaData), { ros2: true });
    const bytes = enc.encode(msg as never);
    const theirs = new MessageReader(defs).readMessage<Record<string, unknown>>(bytes);
    assert.deepEqual(plain(theirs), plain(msg), `${type.name} read by the ROS 2 reader`);
    const written = new MessageWriter(defs).writeMessage(msg);
    assert.deepEqual(
      Buffer.from(bytes),
      Buffer.from(written),
      `${type.name}: the same bytes as the ROS 2 writer`,
    );
    assert.deepEqual(plain(enc.decode(bytes)), plain(msg), `${type.name} round trip`);
  }
});

test("CDR decoding refuses short, foreign or trailing bytes with ERR_DECODE", () => {
  const enc = channelEncodingOf(sensor_msgs.Image);
  const bytes = enc.encode(image());
  for (const bad of [
    bytes.subarray(0, 3),
    bytes.subarray(0, 40),
    new Uint8Array([0, 0, 0, 0, 1, 2, 3, 4]),
    Buffer.concat([bytes, new Uint8Array(8)]),
  ]) {
    assert.throws(
      () => enc.decode(bad),
      (err: unknown) => err instanceof DecodeError && err.code === "ERR_DECODE",
    );
  }
});

const Everything = defineMessage("record_test/Everything", {
  big: t.u64(),
  small: t.i64(),
  ratio: t.f64(),
  nan: t.f32(),
  blob: t.bytes(),
  when: t.time(),
  tags: t.array(t.string(), { maxLength: 4 }),
  fixed: t.array(t.f64(), { length: 2 }),
  state: t.enum({ IDLE: 0, BUSY: 1 }),
  note: t.optional(t.string()),
  header: t.msg(std_msgs.Header),
});

test("other types are jsonschema + json, lossless, with a schema of plain `type` keywords", () => {
  const enc = channelEncodingOf(Everything);
  assert.equal(enc.schemaName, "record_test/Everything");
  assert.equal(enc.schemaEncoding, "jsonschema");
  assert.equal(enc.messageEncoding, "json");
  const msg = Everything.create({
    big: 18446744073709551615n,
    small: -42n,
    ratio: 0.1,
    nan: NaN,
    blob: new Uint8Array([1, 2, 3]),
    when: { sec: 1, nanosec: 2 },
    tags: ["a", "b"],
    fixed: [Infinity, -Infinity],
    state: 1,
    header: { frame_id: "map" },
  });
  const bytes = enc.encode(msg);
  const json = JSON.parse(text(bytes)) as Record<string, unknown>;
  assert.equal(json["big"], "18446744073709551615", "beyond 2^53: a decimal string");
  assert.equal(json["small"], -42, "a safe integer: a number");
  assert.equal(json["nan"], "NaN");
  assert.equal(json["blob"], "AQID");
  assert.deepEqual(plain(enc.decode(bytes)), plain(msg));
  // The viewers' JSON Schema reader handles objects, arrays and typed leaves; no anyOf/oneOf/$ref.
  const walk = (s: JsonSchema, path: string): void => {
    for (const k of ["anyOf", "oneOf", "allOf", "$ref"]) assert.equal(s[k], undefined, `${path}: ${k}`);
    assert.ok(
      ["object", "array", "string", "number", "integer", "boolean"].includes(s["type"] as string),
      path,
    );
    if (s["type"] === "object") {
      for (const [k, sub] of Object.entries(s["properties"] as Record<string, JsonSchema>))
        walk(sub, `${path}.${k}`);
    }
    if (s["type"] === "array") walk(s["items"] as JsonSchema, `${path}[]`);
  };
  walk(JSON.parse(text(enc.schemaData)) as JsonSchema, "Everything");
});

test("a channel read back finds its type by schema name, and unknown schemas fail clearly", () => {
  const img = channelEncodingForSchema({
    schemaName: "sensor_msgs/msg/Image",
    schemaEncoding: "ros2msg",
    messageEncoding: "cdr",
  });
  assert.equal(img.type, sensor_msgs.Image);
  const str = channelEncodingForSchema({
    schemaName: "std_msgs/String",
    schemaEncoding: "jsonschema",
    messageEncoding: "json",
  });
  assert.deepEqual(str.decode(Buffer.from('{"data":"hi"}')), { data: "hi" });
  assert.throws(
    () =>
      channelEncodingForSchema({
        schemaName: "nope_msgs/Thing",
        schemaEncoding: "jsonschema",
        messageEncoding: "json",
      }),
    /ERR_UNKNOWN_TYPE|not known here/,
  );
  assert.throws(
    () =>
      channelEncodingForSchema({
        schemaName: "std_msgs/String",
        schemaEncoding: "protobuf",
        messageEncoding: "protobuf",
      }),
    (err: unknown) => err instanceof DecodeError && /ros2msg\+cdr and jsonschema\+json/.test(err.message),
  );
});

test("encodeParts gives the bytes of encode, with large byte fields referenced rather than copied", () => {
  const data = new Uint8Array(64 * 1024).map((_, i) => i & 0xff);
  const img = sensor_msgs.Image.create({
    header: { frame_id: "f" },
    height: 256,
    width: 256,
    encoding: "mono8",
    step: 256,
    data,
  });
  const enc = channelEncodingOf(sensor_msgs.Image);
  const parts = enc.encodeParts(img);
  assert.ok(parts.includes(data), "the pixels are the message's own buffer");
  assert.deepEqual(Buffer.concat(parts), Buffer.from(enc.encode(img)));
  const cloud = sensor_msgs.PointCloud2.create({
    header: { frame_id: "l" },
    height: 1,
    width: 2048,
    point_step: 16,
    row_step: 32768,
    data: new Uint8Array(32768).fill(7),
    is_dense: true,
  });
  const cenc = channelEncodingOf(sensor_msgs.PointCloud2);
  assert.deepEqual(
    Buffer.concat(cenc.encodeParts(cloud)),
    Buffer.from(cenc.encode(cloud)),
    "fields after the data keep their place",
  );
  const small = channelEncodingOf(std_msgs.String);
  assert.deepEqual(Buffer.concat(small.encodeParts({ data: "x" })), Buffer.from(small.encode({ data: "x" })));
});
