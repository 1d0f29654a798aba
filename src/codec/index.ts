/**
 * The `codec` layer: messages to bytes and back. msgpack (binary, the wire default, with a multi-frame form
 * for large binary fields) and JSON (at the edges). No I/O.
 */
export {
  BLOB_REF_EXT,
  DEFAULT_BLOB_THRESHOLD,
  decodeFrames,
  encodeFrames,
  msgpackCodec,
  msgpackEncode,
  msgpackEncodeTransient,
  type Codec,
} from "./msgpack.js";
export { fromJson, jsonCodec, toJson } from "./json.js";
export { base64DecodeBytes } from "./base64.js";
export { parseData } from "./data-text.js";
export { CompiledRecordWriter, encodeCompiledScratch, encodeCompiledTransient } from "./compiled.js";
export { decodeCompiled, decodeCompiledIn, MISMATCH } from "./compiled-decoder.js";
