/**
 * Limits of the MQTT gateway per client: message size, in-flight messages, subscriptions, and
 * connection rate; plus a guard that refuses an oversized packet from its header, before its body
 * is buffered.
 */
import { MyelinError } from "../errors.js";

/** Limits per client. Every field has a default (see MQTT_LIMIT_DEFAULTS). */
export interface MqttLimits {
  /** Largest PUBLISH payload (and will payload) accepted, in bytes; a client sending more is disconnected. */
  maxMessageBytes?: number;
  /**
   * Inbound QoS 2 messages a client may have awaiting PUBREL; past it the client is disconnected.
   * The default is the protocol's own bound (65,535 message ids), as MQTT 3.1.1 clients such as
   * MQTT.js do not limit what they send; `maxInflightBytes` bounds the memory.
   */
  maxInflight?: number;
  /** Payload bytes of inbound QoS 2 messages a client may have awaiting PUBREL; past it the client is disconnected. */
  maxInflightBytes?: number;
  /** Subscriptions a client may hold; more are refused (SUBACK 0x80). */
  maxSubscriptions?: number;
  /** Connections per minute under one client id (a device in a reconnect loop); more are refused (CONNACK 3). */
  maxConnectionsPerMinute?: number;
  /**
   * Connections per minute from one IP address; more are refused (CONNACK 3). A site's devices
   * often share one address (NAT, a gateway box): this bounds a flood, not a site reconnecting.
   */
  maxConnectionsPerMinutePerAddress?: number;
  /** Clients connected at once; more are refused (CONNACK 3). */
  maxClients?: number;
  /** Longest keep-alive a client may ask for, in seconds (0: no limit); a longer one is refused (CONNACK 6 per aedes, then closed). */
  maxKeepaliveSeconds?: number;
}

/** Defaults of MqttLimits. */
export const MQTT_LIMIT_DEFAULTS: Required<MqttLimits> = Object.freeze({
  maxMessageBytes: 256 * 1024,
  maxInflight: 65535,
  maxInflightBytes: 64 * 1024 * 1024,
  maxSubscriptions: 100,
  maxConnectionsPerMinute: 60,
  maxConnectionsPerMinutePerAddress: 1000,
  maxClients: 10000,
  maxKeepaliveSeconds: 0,
});

/** A value for an error message; never throws (a bigint, or a YAML alias to itself, would in JSON.stringify). */
function shown(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length <= 40 ? v : `${v.slice(0, 40)}…`);
  if (typeof v === "object" && v !== null) return Array.isArray(v) ? "a list" : "a map";
  return String(v);
}

/**
 * Fills in defaults and checks ranges.
 * @throws MyelinError ERR_BAD_CONFIG naming the field
 */
export function resolveLimits(l: MqttLimits | undefined, where = "limits"): Required<MqttLimits> {
  const out = { ...MQTT_LIMIT_DEFAULTS };
  if (l === undefined) return out;
  if (typeof l !== "object" || l === null) throw new MyelinError("ERR_BAD_CONFIG", `${where}: must be a map`);
  if (Array.isArray(l)) throw new MyelinError("ERR_BAD_CONFIG", `${where}: must be a map, got a list`);
  for (const [k, v] of Object.entries(l)) {
    // Own keys only: `toString` or `__proto__` are not limits.
    if (!Object.hasOwn(MQTT_LIMIT_DEFAULTS, k)) {
      throw new MyelinError(
        "ERR_BAD_CONFIG",
        `${where}.${k}: not a known limit; known: ${Object.keys(MQTT_LIMIT_DEFAULTS).join(", ")}`,
      );
    }
    const min = k === "maxKeepaliveSeconds" ? 0 : 1;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
      throw new MyelinError("ERR_BAD_CONFIG", `${where}.${k}: must be an integer ≥ ${min}, got ${shown(v)}`);
    }
    out[k as keyof MqttLimits] = v;
  }
  return out;
}

/** Counts connections per key over the last minute. */
export class ConnectionRate {
  readonly #seen = new Map<string, number[]>();
  #lastSweep = Date.now();

  /**
   * Records a connection attempt under every key, each with its own limit per minute.
   * @returns the first key over its limit, or undefined if the attempt is allowed
   */
  over(keys: [key: string, perMinute: number][], now = Date.now()): string | undefined {
    if (now - this.#lastSweep > 60000) this.#sweep(now);
    let first: string | undefined;
    for (const [k, perMinute] of keys) {
      let ts = this.#seen.get(k);
      if (ts === undefined) this.#seen.set(k, (ts = []));
      let old = 0;
      while (old < ts.length && now - ts[old]! >= 60000) old++;
      if (old > 0) ts.splice(0, old);
      if (ts.length >= perMinute) first ??= k;
      else ts.push(now);
    }
    return first;
  }

  #sweep(now: number): void {
    this.#lastSweep = now;
    for (const [k, ts] of this.#seen)
      if (ts.length === 0 || now - ts[ts.length - 1]! >= 60000) this.#seen.delete(k);
  }
}

/** The parts of an mqtt-packet parser the size guard hooks. */
interface ParserLike {
  _parseLength(this: ParserLike): boolean;
  packet: { cmd?: string; length: number };
  _emitError(err: Error): void;
}

/**
 * Makes `parser` (the mqtt-packet parser of one aedes client) refuse a packet whose remaining
 * length is over `maxPacketBytes` as soon as its header is read, so it is never buffered.
 * `onOversize` is told the packet type and length.
 */
export function guardPacketSize(
  parser: unknown,
  maxPacketBytes: number,
  onOversize: (cmd: string, length: number) => void,
): void {
  const p = parser as ParserLike;
  if (typeof p._parseLength !== "function" || typeof p._emitError !== "function") return;
  const parseLength = p._parseLength.bind(p);
  p._parseLength = function guardedParseLength(this: ParserLike): boolean {
    const ok = parseLength();
    if (ok && this.packet.length > maxPacketBytes) {
      const cmd = this.packet.cmd ?? "packet";
      onOversize(cmd, this.packet.length);
      this._emitError(
        new Error(`${cmd} of ${this.packet.length} bytes is over the limit of ${maxPacketBytes}`),
      );
      return false;
    }
    return ok;
  };
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** What is wrong with a string field of an MQTT packet, or undefined if it is well formed. */
export function badMqttString(bytes: Uint8Array, decoded: string): string | undefined {
  if (decoded.includes("\u0000")) return "it contains U+0000";
  if (!decoded.includes("\uFFFD")) return undefined; // Node decoded it without replacing anything
  try {
    strictUtf8.decode(bytes);
    return undefined; // a real U+FFFD
  } catch {
    return "it is not well-formed UTF-8 (invalid bytes, an overlong form or an encoded surrogate)";
  }
}

interface StringParserLike {
  _parseString: (this: StringParserLike, ...args: unknown[]) => string | null;
  _pos: number;
  _list: { slice(start: number, end: number): Uint8Array };
  packet: { cmd?: string };
  _emitError(err: Error): void;
}

/**
 * Makes `parser` (the mqtt-packet parser of one aedes client) refuse a packet with a string
 * (topic, filter, client id, user name) that is not well-formed UTF-8 or holds U+0000: MQTT
 * 3.1.1 (1.5.3) requires closing the connection, where the parser alone would pass the string
 * on with replacement characters. `onBad` is told the packet type and the reason.
 */
export function guardStrings(parser: unknown, onBad: (cmd: string, reason: string) => void): void {
  const p = parser as StringParserLike;
  if (typeof p._parseString !== "function" || typeof p._emitError !== "function") return;
  const parseString = p._parseString;
  p._parseString = function strictParseString(this: StringParserLike, ...args: unknown[]): string | null {
    const start = this._pos;
    const s = parseString.apply(this, args);
    if (s === null) return s;
    const bad = badMqttString(this._list.slice(start + 2, this._pos), s);
    if (bad === undefined) return s;
    const cmd = this.packet.cmd ?? "packet";
    onBad(cmd, bad);
    this._emitError(new Error(`a string in a ${cmd} packet is refused: ${bad}`));
    return null;
  };
}
