/**
 * Raw delivery: a subscription created with `raw: true` hands over each message as it arrived, still
 * encoded (the codec's frames: one msgpack buffer, or a body and its large byte fields), with the
 * header fields in its `MessageInfo` (seq, publish time, publisher), without decoding or validating it.
 *
 * For tools that store or forward messages and decode them elsewhere, or not at all: a recorder that
 * transcodes on a worker thread, a bridge, a relay. Nothing is checked against the type: a payload may
 * be malformed or not fit the topic's type, and it is the reader's job to decode (`decodeFrames`) and
 * validate (`type.validate`) before trusting it. Applications that use the messages should not use it.
 */
import { encodeFrames } from "../codec/index.js";

/** A message as it arrived, still encoded; see the module comment. */
export interface RawMessage {
  /**
   * The codec's frames (`decodeFrames(frames)` decodes them): one msgpack buffer for most messages; a
   * body and its large byte fields (16 KiB or more by default) as separate frames for large ones.
   * From another process they are views of the received bytes; from a publisher in this process the
   * message is encoded for the subscription. Frames read from shared memory are valid only until a
   * callback returns (an async iterator gets copies): copy what you keep.
   */
  readonly frames: readonly Uint8Array[];
  /** Total bytes of the frames. */
  readonly bytes: number;
}

/** @internal A message of a publisher in this process, encoded for a raw subscription. */
export function rawFromValue(msg: unknown): RawMessage {
  const frames = encodeFrames(msg);
  let bytes = 0;
  for (const f of frames) bytes += f.byteLength;
  return { frames, bytes };
}
