/**
 * The `record` layer: MCAP recording, playback and inspection of bags. `channel-encoding.ts` says how a
 * Myelin type is written for the viewers (Foxglove, Lichtblick); the Foxglove server reuses it.
 */
export {
  CDR_TYPES,
  channelEncodingForSchema,
  channelEncodingOf,
  type ChannelEncoding,
  type ChannelSchema,
  type MessageEncoding,
  type SchemaEncoding,
} from "./channel-encoding.js";
