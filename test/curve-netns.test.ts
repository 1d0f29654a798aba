/**
 * CURVE on a real link between hosts: two network namespaces on a bridge, each with its own
 * runtime, data and key directories. Host A runs a hub on tcp and a publisher; host B a subscriber
 * that reaches both over the link. tcpdump on B's veth captures everything B exchanges: with CURVE
 * the marker the publisher sends never appears in the capture; with `--insecure` it does (proving
 * the capture would see it). Needs root (namespaces, tcpdump); skipped with a message otherwise.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { KeyStore } from "../src/transport/key-store.js";
import { fixture } from "./helpers.js";

const CLI = fileURLToPath(new URL("../../bin/myelin", import.meta.url));
const canRun =
  process.getuid?.() === 0 &&
  spawnSync("ip", ["-V"]).status === 0 &&
  spawnSync("tcpdump", ["--version"]).status === 0;
const skip = canRun ? false : "needs root, iproute2 and tcpdump (network namespaces and a capture)";

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}`);
}

/** A process printing lines; `waitLine` waits for one matching, with a timeout. */
class LineProc {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  #waiters = new Set<() => void>();
  exited = false;

  constructor(cmd: string, args: string[], env: Record<string, string>) {
    this.child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    for (const s of [this.child.stdout!, this.child.stderr!]) {
      createInterface({ input: s }).on("line", (l) => {
        this.lines.push(l);
        for (const w of this.#waiters) w();
      });
    }
    this.child.on("exit", () => {
      this.exited = true;
      for (const w of this.#waiters) w();
    });
  }

  waitLine(re: RegExp, timeoutMs: number, what: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const l = this.lines.find((x) => re.test(x));
        if (l !== undefined || this.exited) {
          clearTimeout(t);
          this.#waiters.delete(check);
          if (l !== undefined) resolve(l);
          else reject(new Error(`exited before ${what}; output: ${this.lines.slice(-10).join(" | ")}`));
        }
      };
      const t = setTimeout(() => {
        this.#waiters.delete(check);
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}; output: ${this.lines.slice(-10).join(" | ")}`,
          ),
        );
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }

  /** Stops it (SIGINT, then SIGKILL after 5 s) and waits for the exit. */
  async stop(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((r) => this.child.once("exit", () => r()));
    this.child.kill("SIGINT");
    const t = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await done;
    clearTimeout(t);
  }
}

/** Two namespaces on a bridge, named with the prefix `mcv`; removed on dispose. */
function twoHosts(): {
  a: string;
  b: string;
  ipA: string;
  ipB: string;
  vethB: string;
  [Symbol.dispose](): void;
} {
  const id = randomBytes(2).toString("hex");
  const a = `mcv-a-${id}`;
  const b = `mcv-b-${id}`;
  const br = `mcvbr${id}`;
  const [va, vaPeer, vb, vbPeer] = [`mcva${id}`, `mcvA${id}`, `mcvb${id}`, `mcvB${id}`];
  const octet = 100 + (parseInt(id, 16) % 100);
  const ipA = `10.${octet}.7.1`;
  const ipB = `10.${octet}.7.2`;
  const cleanup = (): void => {
    for (const args of [
      ["netns", "del", a],
      ["netns", "del", b],
      ["link", "del", br],
      ["link", "del", va],
      ["link", "del", vb],
    ]) {
      spawnSync("ip", args, { stdio: "ignore" });
    }
  };
  try {
    sh("ip", ["netns", "add", a]);
    sh("ip", ["netns", "add", b]);
    sh("ip", ["link", "add", br, "type", "bridge"]);
    sh("ip", ["link", "set", br, "up"]);
    for (const [ns, root, peer, ip] of [
      [a, va, vaPeer, ipA],
      [b, vb, vbPeer, ipB],
    ] as const) {
      sh("ip", ["link", "add", root, "type", "veth", "peer", "name", peer]);
      sh("ip", ["link", "set", peer, "netns", ns]);
      sh("ip", ["link", "set", root, "master", br]);
      sh("ip", ["link", "set", root, "up"]);
      sh("ip", ["-n", ns, "addr", "add", `${ip}/24`, "dev", peer]);
      sh("ip", ["-n", ns, "link", "set", peer, "up"]);
      sh("ip", ["-n", ns, "link", "set", "lo", "up"]);
    }
  } catch (err) {
    cleanup();
    throw err;
  }
  return { a, b, ipA, ipB, vethB: vb, [Symbol.dispose]: cleanup };
}

/** One run: hub and publisher on A, subscriber on B, capture on B's veth; returns what was captured. */
async function run(insecure: boolean): Promise<{ capture: Buffer; marker: string; received: number }> {
  using net = twoHosts();
  const root = mkdtempSync(join(tmpdir(), "myelin-curve-netns-"));
  const procs: LineProc[] = [];
  try {
    const dirs = (h: string) => {
      const d = { run: join(root, h, "run"), data: join(root, h, "data"), keys: join(root, h, "keys") };
      mkdirSync(d.run, { recursive: true, mode: 0o700 });
      return d;
    };
    const A = dirs("a");
    const B = dirs("b");
    const keysA = new KeyStore(A.keys, undefined);
    const keysB = new KeyStore(B.keys, undefined);
    if (!insecure) {
      const pa = keysA.init().publicKey;
      const pb = keysB.init().publicKey;
      keysA.trust("host-b", pb); // A's hub and A's publisher admit B
      keysB.trust("host-a", pa); // B names A's hub by this name (MYELIN_HUB_KEY=host-a)
    }
    const envOf = (d: typeof A, host: string): Record<string, string> => ({
      MYELIN_RUNTIME_DIR: d.run,
      MYELIN_DATA_DIR: d.data,
      MYELIN_KEYS_DIR: d.keys,
      MYELIN_INSECURE: insecure ? "1" : "",
      MYELIN_HUB: "",
      MYELIN_HUB_KEY: "",
      MYELIN_DATA_ENDPOINT: `tcp://${host}:0`,
      HOSTNAME: host,
    });
    const hubEp = `tcp://${net.ipA}:7447`;
    const capFile = join(root, "capture.pcap");
    // Immediate mode and -U: each packet is in the file as soon as it crossed (no kernel block
    // buffering a stop would discard).
    const cap = new LineProc(
      "tcpdump",
      ["-i", net.vethB, "--immediate-mode", "-U", "-n", "-s", "0", "-Z", "root", "-w", capFile, "tcp"],
      {},
    );
    procs.push(cap);
    await cap.waitLine(/listening on/, 15000, "tcpdump to listen");

    const hub = new LineProc(
      "ip",
      [
        "netns",
        "exec",
        net.a,
        process.execPath,
        CLI,
        "hub",
        "--listen",
        hubEp,
        "--no-store",
        ...(insecure ? ["--insecure"] : []),
      ],
      envOf(A, net.ipA),
    );
    procs.push(hub);
    await hub.waitLine(/listening on tcp:\/\//, 20000, "the hub on tcp");
    if (insecure)
      assert.ok(
        hub.lines.some((l) => /WARNING: .* is plain text \(--insecure\)/.test(l)),
        hub.lines.join("\n"),
      );

    const marker = `MCV-MARKER-${randomBytes(6).toString("hex")}`;
    const count = 30;
    const sub = new LineProc(
      "ip",
      [
        "netns",
        "exec",
        net.b,
        process.execPath,
        fixture("curve-node"),
        JSON.stringify({ role: "sub", topic: "/marked", count }),
      ],
      { ...envOf(B, net.ipB), MYELIN_HUB: hubEp, MYELIN_HUB_KEY: insecure ? "" : "host-a" },
    );
    procs.push(sub);
    await sub.waitLine(/"event":"(ready|error)"/, 20000, "the subscriber on B");
    const pub = new LineProc(
      "ip",
      [
        "netns",
        "exec",
        net.a,
        process.execPath,
        fixture("curve-node"),
        JSON.stringify({ role: "pub", topic: "/marked", count, marker, waitSubscribers: 1 }),
      ],
      envOf(A, net.ipA),
    );
    procs.push(pub);
    await sub.waitLine(/"event":"(done|error)"/, 40000, `${count} messages on B`);
    const received = sub.lines.filter((l) => l.includes(marker)).length;
    // A sentinel sent from B over the same link after the data: once it is in the capture file,
    // everything before it is too (packets are written in order).
    const sentinel = `MCV-END-${randomBytes(6).toString("hex")}`;
    spawnSync("ip", [
      "netns",
      "exec",
      net.b,
      process.execPath,
      "-e",
      `const s=require("net").connect(7447,${JSON.stringify(net.ipA)},()=>s.end(${JSON.stringify(sentinel)}));s.on("error",()=>{});s.on("close",()=>process.exit(0))`,
    ]);
    for (
      const end = Date.now() + 10000;
      !(existsSync(capFile) && readFileSync(capFile).includes(sentinel));
    ) {
      if (Date.now() > end)
        throw new Error("timed out after 10000 ms waiting for the sentinel in the capture file");
      await new Promise((r) => setTimeout(r, 50)); // tcpdump writes the file; no event to wait on
    }
    await cap.stop();
    const capture = readFileSync(capFile);
    return { capture, marker, received };
  } finally {
    for (const p of procs.reverse()) await p.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

test(
  "with CURVE, a capture of the link between hosts shows none of the marker the publisher sends",
  { skip, timeout: 60000 },
  async () => {
    const { capture, marker, received } = await run(false);
    assert.equal(received, 30, "the subscriber on host B got every message");
    assert.ok(capture.length > 2000, `the capture holds the exchange (${capture.length} bytes)`);
    assert.equal(capture.includes(marker), false, "the marker crossed the link in clear text");
    assert.equal(capture.includes("/marked"), false, "the topic name crossed the link in clear text");
  },
);

test(
  "with --insecure, the same capture shows the marker (the check can fail)",
  { skip, timeout: 60000 },
  async () => {
    const { capture, marker, received } = await run(true);
    assert.equal(received, 30);
    assert.ok(capture.includes(marker), "the marker is in the capture of a plain-text link");
  },
);
