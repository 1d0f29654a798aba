/**
 * LAN scouting (opt-in, `myelin hub --scout`): each hub announces itself by UDP multicast every
 * `intervalMs` (scout-protocol.ts: site, host, hub id, its peer endpoint, its CURVE public key) and
 * hears the others. A hub of the same site that is heard is handed to `onHub`, which decides
 * whether to peer (the hub peers only with trusted keys under CURVE); one not heard for `ttlMs` is
 * handed to `onExpired`. A hub that stops sends a `leave` datagram and stops announcing.
 *
 * Malformed, oversized, foreign-version and other-site datagrams are counted and dropped; nothing a
 * datagram holds can throw out of this class. The multicast TTL is 1 (the LAN, never routed).
 */
import { createSocket, type Socket } from "node:dgram";
import { MyelinError } from "../errors.js";
import {
  decodeAnnouncement,
  encodeAnnouncement,
  MAX_ANNOUNCEMENT_BYTES,
  type Announcement,
} from "./scout-protocol.js";

/** The default multicast group and port (`--scout` without an address). */
export const DEFAULT_SCOUT_ADDRESS = "224.0.0.224:7446";

/** Options of a Scout. */
export interface ScoutOptions {
  /** Multicast group (IPv4, 224.0.0.0/4). */
  group: string;
  /** UDP port every hub of the site binds. */
  port: number;
  /** Address of the interface to send and join on (default: the system's choice by route). */
  interfaceAddress?: string | undefined;
  /** What this hub announces (its `kind` is set per datagram). */
  self: Omit<Announcement, "kind">;
  /** How long a hub not heard from stays known, in ms (default 3.5 × the announcing hub's interval). */
  ttlMs?: number;
  /** A hub of the site was heard (every announcement). */
  onHub: (a: Announcement, from: string) => void;
  /** A hub was not heard for its TTL, or said it leaves. */
  onExpired: (a: Announcement) => void;
  log: (line: string) => void;
}

/** What scouting counted, for `myelin site status`. */
export interface ScoutStatus {
  /** `GROUP:PORT`. */
  address: string;
  site: string;
  intervalMs: number;
  /** Announcements sent. */
  sent: number;
  /** Announcements of this site's hubs heard. */
  heard: number;
  /** Hubs of this site heard within their TTL. */
  known: number;
  /** Datagrams dropped: malformed, oversized, another version. */
  malformed: number;
  /** Announcements of other sites, ignored. */
  otherSite: number;
}

interface Known {
  a: Announcement;
  lastHeard: number;
}

/**
 * Parses `GROUP:PORT` (IPv4 multicast group, port 1-65535).
 * @throws MyelinError ERR_INVALID_ARGUMENT naming the text and what is accepted
 */
export function parseScoutAddress(text: string): { group: string; port: number } {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3}):(\d{1,5})$/.exec(text.trim());
  const octets = m === null ? [] : m.slice(1, 5).map(Number);
  const port = m === null ? 0 : Number(m[5]);
  if (
    m === null ||
    octets.some((o) => o > 255) ||
    octets[0]! < 224 ||
    octets[0]! > 239 ||
    port < 1 ||
    port > 65535
  ) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `scouting address '${text}' is not GROUP:PORT with an IPv4 multicast group (224.0.0.0-239.255.255.255) and a port 1-65535, e.g. ${DEFAULT_SCOUT_ADDRESS}`,
    );
  }
  return { group: octets.join("."), port };
}

/** One hub's scouting; see the file comment. Start with {@link Scout.start}. */
export class Scout {
  readonly #o: ScoutOptions;
  readonly #sock: Socket;
  readonly #known = new Map<string, Known>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #sent = 0;
  #heard = 0;
  #malformed = 0;
  #otherSite = 0;
  #lastError = "";

  private constructor(o: ScoutOptions, sock: Socket) {
    this.#o = o;
    this.#sock = sock;
  }

  /**
   * Binds the port, joins the group and starts announcing.
   * @throws MyelinError ERR_INVALID_ARGUMENT when the socket cannot be bound or the group joined
   */
  static async start(o: ScoutOptions): Promise<Scout> {
    encodeAnnouncement({ ...o.self, kind: "announce" }); // every field is valid, or this throws
    const sock = createSocket({ type: "udp4", reuseAddr: true });
    const s = new Scout(o, sock);
    try {
      await new Promise<void>((resolve, reject) => {
        sock.once("error", reject);
        sock.bind(o.port, () => {
          sock.off("error", reject);
          resolve();
        });
      });
      sock.addMembership(o.group, o.interfaceAddress);
      if (o.interfaceAddress !== undefined) sock.setMulticastInterface(o.interfaceAddress);
      sock.setMulticastTTL(1);
      sock.setMulticastLoopback(true); // hubs of one machine (several runtime dirs) hear each other
    } catch (err) {
      sock.close();
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `cannot scout on ${o.group}:${o.port}${o.interfaceAddress !== undefined ? ` via ${o.interfaceAddress}` : ""}: ${(err as Error).message}; check that the interface has a multicast route (ip route add 224.0.0.0/4 dev IFACE), or choose another --scout GROUP:PORT`,
        { cause: err },
      );
    }
    sock.on("error", (err) => s.#warn(`scouting socket: ${err.message}`));
    sock.on("message", (msg, rinfo) => s.#receive(msg, rinfo.address));
    s.#announce("announce");
    s.#timer = setInterval(() => s.#tick(), o.self.intervalMs);
    s.#timer.unref();
    return s;
  }

  /** Counts and settings, for `site status`. */
  status(): ScoutStatus {
    return {
      address: `${this.#o.group}:${this.#o.port}`,
      site: this.#o.self.site,
      intervalMs: this.#o.self.intervalMs,
      sent: this.#sent,
      heard: this.#heard,
      known: this.#known.size,
      malformed: this.#malformed,
      otherSite: this.#otherSite,
    };
  }

  /** Says `leave` and stops announcing and listening. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    await new Promise<void>((resolve) => {
      try {
        this.#sock.send(
          encodeAnnouncement({ ...this.#o.self, kind: "leave" }),
          this.#o.port,
          this.#o.group,
          () => resolve(),
        );
      } catch {
        resolve();
      }
    });
    this.#sock.close();
  }

  #warn(line: string): void {
    // Each distinct error once in a row: a down interface must not fill the log every interval.
    if (line === this.#lastError) return;
    this.#lastError = line;
    this.#o.log(line);
  }

  #announce(kind: "announce" | "leave"): void {
    if (this.#closed) return;
    this.#sock.send(encodeAnnouncement({ ...this.#o.self, kind }), this.#o.port, this.#o.group, (err) => {
      if (err) this.#warn(`scouting: cannot send the announcement: ${err.message}`);
      else {
        this.#sent++;
        this.#lastError = "";
      }
    });
  }

  #tick(): void {
    this.#announce("announce");
    const now = Date.now();
    for (const [hub, k] of this.#known) {
      const ttl = this.#o.ttlMs ?? Math.round(k.a.intervalMs * 3.5);
      if (now - k.lastHeard <= ttl) continue;
      this.#known.delete(hub);
      this.#o.onExpired(k.a);
    }
  }

  #receive(msg: Buffer, from: string): void {
    if (this.#closed) return;
    let a: Announcement;
    try {
      if (msg.length > MAX_ANNOUNCEMENT_BYTES) throw new Error("oversized");
      a = decodeAnnouncement(msg);
    } catch {
      this.#malformed++;
      return;
    }
    if (a.hub === this.#o.self.hub) return; // our own, looped back
    if (a.site !== this.#o.self.site) {
      this.#otherSite++;
      return;
    }
    this.#heard++;
    if (a.kind === "leave") {
      const k = this.#known.get(a.hub);
      this.#known.delete(a.hub);
      if (k !== undefined) this.#o.onExpired(k.a);
      return;
    }
    // Bounded: a flood of invented hub ids cannot grow this past 4,096 entries.
    if (!this.#known.has(a.hub) && this.#known.size >= 4096) return;
    this.#known.set(a.hub, { a, lastHeard: Date.now() });
    try {
      this.#o.onHub(a, from);
    } catch (err) {
      this.#warn(`scouting: announcement of hub ${a.hub} from ${from} not used: ${(err as Error).message}`);
    }
  }
}
