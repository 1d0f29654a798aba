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
  /** Inbound QoS 2 messages a client may have awaiting PUBREL; past it the client is disconnected. */
  maxInflight?: number;
  /** Subscriptions a client may hold; more are refused (SUBACK 0x80). */
  maxSubscriptions?: number;
  /** Connections per minute from one client id or one address; more are refused (CONNACK 3). */
  maxConnectionsPerMinute?: number;
  /** Clients connected at once; more are refused (CONNACK 3). */
  maxClients?: number;
  /** Longest keep-alive a client may ask for, in seconds (0: no limit); a longer one is refused (CONNACK 6 per aedes, then closed). */
  maxKeepaliveSeconds?: number;
}

/** Defaults of MqttLimits. */
export const MQTT_LIMIT_DEFAULTS: Required<MqttLimits> = Object.freeze({
  maxMessageBytes: 256 * 1024,
  maxInflight: 100,
  maxSubscriptions: 100,
  maxConnectionsPerMinute: 60,
  maxClients: 10000,
  maxKeepaliveSeconds: 0,
});

/**
 * Fills in defaults and checks ranges.
 * @throws MyelinError ERR_BAD_CONFIG naming the field
 */
export function resolveLimits(l: MqttLimits | undefined, where = "limits"): Required<MqttLimits> {
  const out = { ...MQTT_LIMIT_DEFAULTS };
  if (l === undefined) return out;
  if (typeof l !== "object" || l === null) throw new MyelinError("ERR_BAD_CONFIG", `${where}: must be a map`);
  for (const [k, v] of Object.entries(l)) {
    if (!(k in MQTT_LIMIT_DEFAULTS)) {
      throw new MyelinError(
        "ERR_BAD_CONFIG",
        `${where}.${k}: not a known limit; known: ${Object.keys(MQTT_LIMIT_DEFAULTS).join(", ")}`,
      );
    }
    const min = k === "maxKeepaliveSeconds" ? 0 : 1;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
      throw new MyelinError(
        "ERR_BAD_CONFIG",
        `${where}.${k}: must be an integer ≥ ${min}, got ${JSON.stringify(v)}`,
      );
    }
    out[k as keyof MqttLimits] = v;
  }
  return out;
}

/** Counts connections per key over the last minute. */
export class ConnectionRate {
  readonly #perMinute: number;
  readonly #seen = new Map<string, number[]>();
  #lastSweep = Date.now();

  constructor(perMinute: number) {
    this.#perMinute = perMinute;
  }

  /** Records a connection attempt for every key; false if any key is over the rate. */
  allow(keys: string[], now = Date.now()): boolean {
    if (now - this.#lastSweep > 60000) this.#sweep(now);
    let ok = true;
    for (const k of keys) {
      let ts = this.#seen.get(k);
      if (ts === undefined) this.#seen.set(k, (ts = []));
      while (ts.length > 0 && now - ts[0]! >= 60000) ts.shift();
      if (ts.length >= this.#perMinute) ok = false;
      else ts.push(now);
    }
    return ok;
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
