/**
 * The channels the Foxglove server advertises, from the hub's graph: one per topic that has a
 * publisher, is on the allow-list and is not hidden, with the topic's type in the encoding the
 * recorder uses (so a viewer shows the same thing live and from a bag). A channel keeps its id
 * while its topic, type and encoding stay the same, also across a disappearance (the spec allows
 * reuse then), and a topic whose type changes gets a new channel.
 */
import type { Channel } from "@foxglove/ws-protocol";
import type { GraphSnapshot } from "../node/index.js";
import { topicMatches } from "../store/topic-config.js";

/** How a topic's messages are offered to viewers: the Foxglove channel fields and the encoder. */
export interface TopicEncoding {
  /** Message encoding, e.g. `json`. */
  encoding: string;
  /** Schema name, e.g. `sensor_msgs/Image` or `foxglove.RawImage`. */
  schemaName: string;
  /** Schema encoding, e.g. `jsonschema`. */
  schemaEncoding: string;
  /** The schema text. */
  schema: string;
  /** Encodes one message (as a subscription delivers it). @throws on a message it cannot encode */
  encode(msg: unknown): Uint8Array;
}

/** Gives the encoding of a type name (registered or not). */
export type EncodingFor = (typeName: string) => TopicEncoding;

/** A channel as the server keeps it. */
export interface ChannelInfo {
  id: number;
  topic: string;
  /** The Myelin type name of the topic. */
  type: string;
  enc: TopicEncoding;
  /** The advertisement sent to clients. */
  wire: Channel;
}

/** What changed in the channel table. */
export interface ChannelChanges {
  added: ChannelInfo[];
  removed: ChannelInfo[];
}

/** True if a name has a segment starting with `_` (hidden, like `/_store/append`). */
export function isHiddenName(name: string): boolean {
  return name.split("/").some((s) => s.startsWith("_"));
}

/** Whether `topic` is on an allow-list of patterns. */
export function allowed(patterns: readonly string[], topic: string): boolean {
  return patterns.some((p) => topicMatches(p, topic));
}

/** The channel table; feed it graphs. */
export class TopicTable {
  readonly #allow: readonly string[];
  readonly #showHidden: boolean;
  readonly #encodingFor: EncodingFor;
  readonly #byTopic = new Map<string, ChannelInfo>();
  readonly #byId = new Map<number, ChannelInfo>();
  /** Ids given before, by topic, type and encoding, for reuse. */
  readonly #ids = new Map<string, number>();
  #nextId = 1;
  /** Topics whose type has no encoding, with the reason (shown in the status). */
  readonly unencodable = new Map<string, string>();

  constructor(opts: { allow: readonly string[]; showHidden: boolean; encodingFor: EncodingFor }) {
    this.#allow = opts.allow;
    this.#showHidden = opts.showHidden;
    this.#encodingFor = opts.encodingFor;
  }

  /** The channel of `id`, if advertised now. */
  get(id: number): ChannelInfo | undefined {
    return this.#byId.get(id);
  }

  /** The channel of `topic`, if advertised now. */
  byTopic(topic: string): ChannelInfo | undefined {
    return this.#byTopic.get(topic);
  }

  /** Every channel advertised now. */
  all(): ChannelInfo[] {
    return [...this.#byId.values()];
  }

  /** Whether clients may see `topic` (allow-list and hidden names). */
  visible(topic: string): boolean {
    return (this.#showHidden || !isHiddenName(topic)) && allowed(this.#allow, topic);
  }

  /** Brings the table in line with `g`; returns what changed. */
  update(g: GraphSnapshot): ChannelChanges {
    const want = new Map<string, string>();
    for (const n of g.nodes) {
      for (const p of n.pubs) {
        if (!want.has(p.topic) && this.visible(p.topic)) want.set(p.topic, p.type);
      }
    }
    const changes: ChannelChanges = { added: [], removed: [] };
    for (const [topic, ch] of this.#byTopic) {
      if (want.get(topic) !== ch.type) {
        this.#byTopic.delete(topic);
        this.#byId.delete(ch.id);
        changes.removed.push(ch);
      }
    }
    for (const [topic, type] of want) {
      if (this.#byTopic.has(topic)) continue;
      let enc: TopicEncoding;
      try {
        enc = this.#encodingFor(type);
      } catch (err) {
        this.unencodable.set(topic, `${type}: ${(err as Error).message}`);
        continue;
      }
      this.unencodable.delete(topic);
      const key = `${topic}\n${type}\n${enc.encoding}\n${enc.schemaName}\n${enc.schema}`;
      let id = this.#ids.get(key);
      if (id === undefined) {
        id = this.#nextId++;
        this.#ids.set(key, id);
      }
      const ch: ChannelInfo = {
        id,
        topic,
        type,
        enc,
        wire: {
          id,
          topic,
          encoding: enc.encoding,
          schemaName: enc.schemaName,
          schema: enc.schema,
          schemaEncoding: enc.schemaEncoding,
        },
      };
      this.#byTopic.set(topic, ch);
      this.#byId.set(id, ch);
      changes.added.push(ch);
    }
    for (const topic of this.unencodable.keys()) if (!want.has(topic)) this.unencodable.delete(topic);
    return changes;
  }
}
