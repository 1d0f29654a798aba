/** ROS `std_msgs`: the header, wrappers of single values, colours and multi-arrays. */
import { defineMessage, t } from "../schema.js";
import { registerType } from "../registry.js";

/** Timestamp and coordinate frame of data: `stamp` (time), `frame_id` (string). */
const Header = defineMessage("std_msgs/Header", { stamp: t.time(), frame_id: t.string() });
/** No fields. */
const Empty = defineMessage("std_msgs/Empty", {});
/** `data: string`. */
const String = defineMessage("std_msgs/String", { data: t.string() });
/** `data: boolean`. */
const Bool = defineMessage("std_msgs/Bool", { data: t.bool() });
/** `data`: a byte (u8). */
const Byte = defineMessage("std_msgs/Byte", { data: t.u8() });
/** `data`: a char (u8, as in ROS 2). */
const Char = defineMessage("std_msgs/Char", { data: t.u8() });
/** `data: i8`. */
const Int8 = defineMessage("std_msgs/Int8", { data: t.i8() });
/** `data: i16`. */
const Int16 = defineMessage("std_msgs/Int16", { data: t.i16() });
/** `data: i32`. */
const Int32 = defineMessage("std_msgs/Int32", { data: t.i32() });
/** `data: i64` (bigint). */
const Int64 = defineMessage("std_msgs/Int64", { data: t.i64() });
/** `data: u8`. */
const UInt8 = defineMessage("std_msgs/UInt8", { data: t.u8() });
/** `data: u16`. */
const UInt16 = defineMessage("std_msgs/UInt16", { data: t.u16() });
/** `data: u32`. */
const UInt32 = defineMessage("std_msgs/UInt32", { data: t.u32() });
/** `data: u64` (bigint). */
const UInt64 = defineMessage("std_msgs/UInt64", { data: t.u64() });
/** `data: f32`. */
const Float32 = defineMessage("std_msgs/Float32", { data: t.f32() });
/** `data: f64`. */
const Float64 = defineMessage("std_msgs/Float64", { data: t.f64() });
/** A colour: `r`, `g`, `b`, `a` (f32, 0..1 by convention). */
const ColorRGBA = defineMessage("std_msgs/ColorRGBA", { r: t.f32(), g: t.f32(), b: t.f32(), a: t.f32() });
/** One dimension of a multi-array: `label`, `size` (elements), `stride` (elements). */
const MultiArrayDimension = defineMessage("std_msgs/MultiArrayDimension", {
  label: t.string(),
  size: t.u32(),
  stride: t.u32(),
});
/** Layout of a multi-array: `dim` (outermost first) and `data_offset` (elements). */
const MultiArrayLayout = defineMessage("std_msgs/MultiArrayLayout", {
  dim: t.array(t.msg(MultiArrayDimension)),
  data_offset: t.u32(),
});
/** A multi-array of bytes: `layout`, `data` (bytes). */
const UInt8MultiArray = defineMessage("std_msgs/UInt8MultiArray", {
  layout: t.msg(MultiArrayLayout),
  data: t.bytes(),
});
/** A multi-array of f32: `layout`, `data` (f32[]). */
const Float32MultiArray = defineMessage("std_msgs/Float32MultiArray", {
  layout: t.msg(MultiArrayLayout),
  data: t.array(t.f32()),
});
/** A multi-array of f64: `layout`, `data` (f64[]). */
const Float64MultiArray = defineMessage("std_msgs/Float64MultiArray", {
  layout: t.msg(MultiArrayLayout),
  data: t.array(t.f64()),
});

/**
 * The types of the `std_msgs` package. Each property is declared with an explicit type so that
 * `std_msgs.Header.assert(value)` can narrow `value` (TypeScript requires that of assertion calls).
 */
export interface StdMsgs {
  readonly Header: typeof Header;
  readonly Empty: typeof Empty;
  readonly String: typeof String;
  readonly Bool: typeof Bool;
  readonly Byte: typeof Byte;
  readonly Char: typeof Char;
  readonly Int8: typeof Int8;
  readonly Int16: typeof Int16;
  readonly Int32: typeof Int32;
  readonly Int64: typeof Int64;
  readonly UInt8: typeof UInt8;
  readonly UInt16: typeof UInt16;
  readonly UInt32: typeof UInt32;
  readonly UInt64: typeof UInt64;
  readonly Float32: typeof Float32;
  readonly Float64: typeof Float64;
  readonly ColorRGBA: typeof ColorRGBA;
  readonly MultiArrayDimension: typeof MultiArrayDimension;
  readonly MultiArrayLayout: typeof MultiArrayLayout;
  readonly UInt8MultiArray: typeof UInt8MultiArray;
  readonly Float32MultiArray: typeof Float32MultiArray;
  readonly Float64MultiArray: typeof Float64MultiArray;
}

/** The `std_msgs` package. */
export const std_msgs: StdMsgs = Object.freeze({
  Header,
  Empty,
  String,
  Bool,
  Byte,
  Char,
  Int8,
  Int16,
  Int32,
  Int64,
  UInt8,
  UInt16,
  UInt32,
  UInt64,
  Float32,
  Float64,
  ColorRGBA,
  MultiArrayDimension,
  MultiArrayLayout,
  UInt8MultiArray,
  Float32MultiArray,
  Float64MultiArray,
});

for (const type of Object.values(std_msgs)) registerType(type);
