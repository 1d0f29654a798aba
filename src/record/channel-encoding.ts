/**
 * How a Myelin message type is written into an MCAP file or onto a Foxglove WebSocket channel, so that
 * Foxglove and Lichtblick show it without plugins:
 *
 * - `sensor_msgs/Image`, `sensor_msgs/CompressedImage` and `sensor_msgs/PointCloud2` (the types the
 *   viewers' Image and 3D panels draw) as ROS 2 does: schema `sensor_msgs/msg/Image` in `ros2msg`,
 *   messages in `cdr`. Pixels and points travel as raw bytes, one copy, no base64;
 * - every other type as `json` with a `jsonschema` made from the Myelin type (see `viewer-json.ts`),
 *   under its Myelin name (`geometry_msgs/Twist`), which the viewers also recognise for ROS types.
 *
 * ```ts
 * const enc = channelEncodingOf(sensor_msgs.Image);
 * // { schemaName: "sensor_msgs/msg/Image", schemaEncoding: "ros2msg", messageEncoding: "cdr", ... }
 * const bytes = enc.encode(image);
 * const back = enc.decode(bytes); // equal to `image`; `data` is a view into `bytes`
 * ```
 *
 * This module's API (`channelEncodingOf`, `channelEncodingForSchema`, `ChannelEncoding`) is stable;
 * the files it uses (`cdr.ts`, `ros2msg.ts`, `viewer-json.ts`) are internals. No I/O.
 */
import { DecodeError, MyelinError } from "../errors.js";
import { lookupType, type MessageType } from "../msgs/index.js";
import { cdrDecode, cdrEncode, cdrEncodeParts, cdrUnsupported } from "./cdr.js";
import { myelinTypeName, ros2MessageDefinition, ros2TypeName } from "./ros2msg.js";
import { viewerJsonDecode, viewerJsonEncode, viewerJsonSchema } from "./viewer-json.js";

/** The schema encodings this module writes (MCAP registry names). */
export type SchemaEncoding = "jsonschema" | "ros2msg";
/** The message encodings this module writes (MCAP registry names). */
export type MessageEncoding = "json" | "cdr";

/** A Myelin type's channel description and its message codec. */
export interface ChannelEncoding<T> {
  /** The Myelin type, e.g. `sensor_msgs/Image`. */
  readonly type: MessageType<T>;
  /** The schema's name in the file: `sensor_msgs/msg/Image` for CDR types, the Myelin name for JSON. */
  readonly schemaName: string;
  /** `ros2msg` (CDR types) or `jsonschema`. */
  readonly schemaEncoding: SchemaEncoding;
  /** The schema: the ROS 2 `.msg` text with its dependencies, or a JSON Schema document, as UTF-8. */
  readonly schemaData: Uint8Array;
  /** `cdr` or `json`. */
  readonly messageEncoding: MessageEncoding;
  /** Encodes a valid message of the type. Never validates: validate first if the value is untrusted. */
  encode(msg: T): Uint8Array;
  /**
   * The bytes of `encode(msg)` in pieces, for writers that gather (`writev`): large byte fields (16 KiB
   * or more: pixels, points) are the message's own buffers, not copies. Do not change them until written.
   */
  encodeParts(msg: T): Uint8Array[];
  /**
   * Decodes a message written by `encode` (or by another writer of the same schema); `bytes` fields may
   * be views into `data`.
   * @throws DecodeError ERR_DECODE on bytes that are not a message of the type.
   * @throws ValidationError ERR_VALIDATION when JSON does not fit the type.
   */
  decode(data: Uint8Array): T;
}

/** The types written as ROS 2 CDR, so that the viewers' Image and 3D panels draw them natively. */
export const CDR_TYPES: readonly string[] = Object.freeze([
  "sensor_msgs/Image",
  "sensor_msgs/CompressedImage",
  "sensor_msgs/PointCloud2",
]);

const cache = new WeakMap<object, ChannelEncoding<unknown>>();

function cdrEncoding<T>(type: MessageType<T>): ChannelEncoding<T> {
  return Object.freeze({
    type,
    schemaName: ros2TypeName(type.name),
    schemaEncoding: "ros2msg",
    schemaData: Buffer.from(ros2MessageDefinition(type as MessageType<unknown>), "utf8"),
    messageEncoding: "cdr",
    encode: (msg: T) => cdrEncode(type, msg),
    encodeParts: (msg: T) => cdrEncodeParts(type, msg),
    decode: (data: Uint8Array) => cdrDecode(type, data),
  });
}

function jsonEncoding<T>(type: MessageType<T>): ChannelEncoding<T> {
  return Object.freeze({
    type,
    schemaName: type.name,
    schemaEncoding: "jsonschema",
    schemaData: Buffer.from(JSON.stringify(viewerJsonSchema(type as MessageType<unknown>)), "utf8"),
    messageEncoding: "json",
    encode: (msg: T) => viewerJsonEncode(type, msg),
    encodeParts: (msg: T) => [viewerJsonEncode(type, msg)],
    decode: (data: Uint8Array) => viewerJsonDecode(type, data),
  });
}

/**
 * The channel encoding of `type`: CDR for the types in {@link CDR_TYPES} (when their definition is the
 * ROS one), JSON for every other type. Built once per type.
 */
export function channelEncodingOf<T>(type: MessageType<T>): ChannelEncoding<T> {
  let enc = cache.get(type) as ChannelEncoding<T> | undefined;
  if (enc === undefined) {
    const cdr = CDR_TYPES.includes(type.name) && cdrUnsupported(type) === undefined;
    enc = cdr ? cdrEncoding(type) : jsonEncoding(type);
    cache.set(type, enc);
  }
  return enc;
}

/** A channel as read from a file: its schema's name and encoding, and its messages' encoding. */
export interface ChannelSchema {
  readonly schemaName: string;
  readonly schemaEncoding: string;
  readonly messageEncoding: string;
}

/**
 * The encoding that reads a channel written by {@link channelEncodingOf}: the Myelin type is found by
 * name in the type registry (`sensor_msgs/msg/Image` is `sensor_msgs/Image`), and its messages are
 * decoded as the channel says (`cdr` or `json`, whatever the current default for the type is).
 * @throws MyelinError ERR_UNKNOWN_TYPE if no registered type has the schema's name (load its module).
 * @throws DecodeError ERR_DECODE if the encodings are not `ros2msg`+`cdr` or `jsonschema`+`json`.
 */
export function channelEncodingForSchema(channel: ChannelSchema): ChannelEncoding<unknown> {
  const name = myelinTypeName(channel.schemaName);
  const type = lookupType(name);
  if (type === undefined) {
    throw new MyelinError(
      "ERR_UNKNOWN_TYPE",
      `message type ${name} (schema ${channel.schemaName}) is not known here; import the module that defines it`,
    );
  }
  if (channel.schemaEncoding === "ros2msg" && channel.messageEncoding === "cdr") {
    const why = cdrUnsupported(type);
    if (why !== undefined) {
      throw new DecodeError("ERR_DECODE", `channel of ${name} is CDR, but the Myelin type cannot be: ${why}`);
    }
    const own = channelEncodingOf(type);
    return own.messageEncoding === "cdr" ? own : cdrEncoding(type);
  }
  if (channel.schemaEncoding === "jsonschema" && channel.messageEncoding === "json") {
    const own = channelEncodingOf(type);
    return own.messageEncoding === "json" ? own : jsonEncoding(type);
  }
  throw new DecodeError(
    "ERR_DECODE",
    `channel of ${channel.schemaName} is ${channel.messageEncoding || "unencoded"} with a ` +
      `${channel.schemaEncoding || "missing"} schema; Myelin reads ros2msg+cdr and jsonschema+json`,
  );
}
