/**
 * Hosts for site tests: network namespaces joined by veth pairs to a bridge in a namespace of its
 * own, so no traffic touches the machine's own interfaces. Names start with `mst` (or the prefix
 * given) and a random suffix; everything is removed on dispose (also when a test fails). Needs root
 * and iproute2.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";

/** One "host": a namespace with one address on the site's bridge. */
export interface NsHost {
  ns: string;
  /** Its address on the site network. */
  addr: string;
  /** The veth end on the bridge (cut it to cut the host off). */
  port: string;
}

/** True when this process may create network namespaces. */
export function netnsAvailable(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync("ip", ["netns", "list"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const ip = (...args: string[]): void =>
  void execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });

/** Options of an NsSite. */
export interface NsSiteOptions {
  /** The start of every namespace and interface name (at most 4 characters; default `mst`). */
  prefix?: string;
  /**
   * Route multicast (224.0.0.0/4) out of each host's interface and let the bridge flood it (no
   * IGMP snooping), as on a switch of a LAN: for scouting.
   */
  multicast?: boolean;
}

/** A site of `n` hosts on 10.213.77.0/24. */
export class NsSite {
  readonly hosts: NsHost[] = [];
  readonly #sw: string;
  readonly #namespaces: string[] = [];

  constructor(n: number, opts: NsSiteOptions = {}) {
    const p = opts.prefix ?? "mst";
    // Interface names are at most 15 bytes: `${p}${i}a${tag}`.
    if (!/^[a-z]{1,4}$/.test(p)) throw new Error(`netns prefix '${p}': use 1 to 4 lowercase letters`);
    const tag = randomBytes(2).toString("hex");
    this.#sw = `${p}-sw-${tag}`;
    try {
      ip("netns", "add", this.#sw);
      this.#namespaces.push(this.#sw);
      ip("-n", this.#sw, "link", "add", "mstbr0", "type", "bridge");
      if (opts.multicast === true)
        ip("-n", this.#sw, "link", "set", "mstbr0", "type", "bridge", "mcast_snooping", "0");
      ip("-n", this.#sw, "link", "set", "mstbr0", "up");
      for (let i = 1; i <= n; i++) {
        const ns = `${p}-h${i}-${tag}`;
        ip("netns", "add", ns);
        this.#namespaces.push(ns);
        const a = `${p}${i}a${tag}`;
        const b = `${p}${i}b${tag}`;
        ip("link", "add", a, "netns", ns, "type", "veth", "peer", "name", b, "netns", this.#sw);
        ip("-n", ns, "link", "set", "lo", "up");
        ip("-n", ns, "addr", "add", `10.213.77.${i}/24`, "dev", a);
        ip("-n", ns, "link", "set", a, "up");
        if (opts.multicast === true) ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", a);
        ip("-n", this.#sw, "link", "set", b, "master", "mstbr0");
        ip("-n", this.#sw, "link", "set", b, "up");
        this.hosts.push({ ns, addr: `10.213.77.${i}`, port: b });
      }
    } catch (err) {
      this[Symbol.dispose]();
      throw err;
    }
  }

  /** The prefix that runs a command in host `i`'s namespace. */
  exec(i: number): string[] {
    return ["ip", "netns", "exec", this.hosts[i]!.ns];
  }

  /** Cuts host `i` off the site (its port on the bridge goes down). */
  cut(i: number): void {
    ip("-n", this.#sw, "link", "set", this.hosts[i]!.port, "down");
  }

  /** Connects host `i` again. */
  restore(i: number): void {
    ip("-n", this.#sw, "link", "set", this.hosts[i]!.port, "up");
  }

  /** Runs `nft` with `script` in host `i`'s namespace. */
  nft(i: number, script: string): void {
    execFileSync("ip", ["netns", "exec", this.hosts[i]!.ns, "nft", "-f", "-"], { input: script });
  }

  [Symbol.dispose](): void {
    for (const ns of this.#namespaces.reverse()) {
      try {
        ip("netns", "del", ns);
      } catch {
        // already gone
      }
    }
    this.#namespaces.length = 0;
  }
}
