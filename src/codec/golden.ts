/**
 * Canonical messages of the codec conformance files (conformance/codec/). `golden.test.ts` encodes each
 * value and compares with `<name>.msgpack` byte for byte and `<name>.json` (the `toJson` form) value for
 * value; run the tests with `MYELIN_UPDATE_GOLDEN=1` to rewrite the files after a deliberate format change.
 * No I/O here.
 */
import { defineMessage, t, type MessageType } from "../msgs/schema.js";
import { DiagnosticLevel } from "../msgs/std/diagnostic_msgs.js";
import { geometry_msgs } from "../msgs/std/geometry_msgs.js";
import { sensor_msgs } from "../msgs/std/sensor_msgs.js";
import { std_msgs } from "../msgs/std/std_msgs.js";
import { vision_msgs } from "../msgs/std/vision_msgs.js";

const EverythingType = defineMessage("myelin_conformance/Everything", {
  flag: t.bool(),
  small: t.u8(),
  word: t.u16(),
  count: t.u32(),
  delta: t.i8(),
  offset: t.i16(),
  position: t.i32(),
  ratio: t.f32(),
  value: t.f64(),
  big: t.u64(),
  signed: t.i64(),
  label: t.string(),
  blob: t.bytes(),
  stamp: t.time(),
  period: t.duration(),
  samples: t.array(t.f64(), { length: 3 }),
  tags: t.array(t.string(), { maxLength: 4 }),
  points: t.array(t.msg(geometry_msgs.Point)),
  level: t.enum(DiagnosticLevel),
  note: t.optional(t.string()),
  missing: t.optional(t.u32()),
  extra: t.optional(t.msg(std_msgs.Header)),
});

/**
 * A test-only type with every field kind, including u64/i64 extremes and optional fields. (Declared with
 * an explicit type so that `Everything.assert(v)` narrows.)
 */
export const Everything: typeof EverythingType = EverythingType;

/** One conformance case: file stem, type, canonical value, and the blob threshold for the frames case. */
export interface GoldenCase {
  /** File stem under conformance/codec/: `<name>.msgpack`, `<name>.json`. */
  readonly name: string;
  readonly type: MessageType<unknown>;
  readonly value: unknown;
  /** If set, the case is also encoded with `encodeFrames(value, blobThreshold)` into `<name>.body.msgpack`. */
  readonly blobThreshold?: number;
}

const stamp = { sec: 1_700_000_000, nanosec: 123_456_789 };

/** The canonical cases. Values are built fresh on each call, so tests may not disturb each other. */
export function goldenCases(): GoldenCase[] {
  return [
    {
      name: "twist",
      type: geometry_msgs.Twist,
      value: geometry_msgs.Twist.create({ linear: { x: 0.5 }, angular: { z: -0.25 } }),
    },
    {
      name: "header",
      type: std_msgs.Header,
      value: std_msgs.Header.create({ stamp, frame_id: "base_link" }),
    },
    {
      name: "image",
      type: sensor_msgs.Image,
      value: sensor_msgs.Image.create({
        header: { stamp, frame_id: "camera_optical" },
        height: 2,
        width: 3,
        encoding: "mono8",
        step: 3,
        data: Uint8Array.of(0, 1, 2, 253, 254, 255),
      }),
      blobThreshold: 4,
    },
    {
      name: "detection2darray",
      type: vision_msgs.Detection2DArray,
      value: vision_msgs.Detection2DArray.create({
        header: { stamp, frame_id: "camera" },
        detections: [
          {
            header: { stamp, frame_id: "camera" },
            results: [{ hypothesis: { class_id: "person", score: 0.875 } }],
            bbox: { center: { position: { x: 320, y: 240 }, theta: 0 }, size_x: 64, size_y: 128 },
            id: "track-7",
          },
          {
            header: { stamp, frame_id: "camera" },
            results: [
              { hypothesis: { class_id: "dog", score: 0.5 } },
              { hypothesis: { class_id: "cat", score: 0.25 } },
            ],
            bbox: { center: { position: { x: 10.5, y: 20.25 }, theta: 0.125 }, size_x: 3, size_y: 4 },
            id: "",
          },
        ],
      }),
    },
    {
      name: "everything",
      type: Everything,
      value: Everything.create({
        flag: true,
        small: 255,
        word: 65535,
        count: 4_294_967_295,
        delta: -128,
        offset: -32768,
        position: -2_147_483_648,
        ratio: Infinity,
        value: -1.5e-300,
        big: (1n << 64n) - 1n,
        signed: -(1n << 63n),
        label: "héllo, wörld ✓",
        blob: Uint8Array.of(0xde, 0xad, 0xbe, 0xef),
        stamp,
        period: { sec: -1, nanosec: 500_000_000 },
        samples: [NaN, -Infinity, 1_700_000_000_123],
        tags: ["a", ""],
        points: [{ x: 1, y: 2, z: 3 }],
        level: DiagnosticLevel.STALE,
        note: "present",
      }),
    },
  ];
}
