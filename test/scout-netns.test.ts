/**
 * LAN scouting across network namespaces (prefix `mysc`, on a bridge, multicast routed out of
 * each host's interface): three `myelin hub --scout` processes with CURVE keys that trust each
 * other find each other with no --peer (on the default group 224.0.0.224:7446), and `site status`
 * says each peer was scouted; a fourth hub whose key nobody trusts is heard, logged with the fix,
 * and never peered.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { KeyStore } from "../src/transport/key-store.js";
import { CliProc } from "./cli-world.js";
import { tempRuntime } from "./helpers.js";
import { netnsAvailable, NsSite } from "./netns.js";

const CLI = fileURLToPath(new URL("../../bin/myelin", import.meta.url));

interface Status {
  host: string;
  peers: { host: string; state: string; found?: string }[];
  scout?: { untrusted: number; heard: number };
}

test(
  "three hubs on three hosts find each other by multicast scouting; a hub with an untrusted key is not peered",
  { timeout: 120000, skip: netnsAvailable() ? false : "needs root and ip netns" },
  async () => {
    using site = new NsSite(4, { prefix: "mysc", multicast: true });
    const dirs = [tempRuntime(), tempRuntime(), tempRuntime(), tempRuntime()];
    const procs: CliProc[] = [];
    try {
      const keys = dirs.map((d) => new KeyStore(join(d.dir, "keys"), undefined));
      const pubs = keys.map((k) => k.init().publicKey);
      for (let i = 0; i < 3; i++)
        for (let j = 0; j < 3; j++) if (i !== j) keys[i]!.trust(`h${j + 1}`, pubs[j]!);
      keys[3]!.trust("h1", pubs[0]!); // the stranger trusts h1; nobody trusts it
      const siteName = `mysc-${randomBytes(3).toString("hex")}`;
      const env = (i: number): NodeJS.ProcessEnv => ({
        ...process.env,
        MYELIN_RUNTIME_DIR: dirs[i]!.dir,
        MYELIN_DATA_DIR: join(dirs[i]!.dir, "data"),
        MYELIN_KEYS_DIR: keys[i]!.dir,
        MYELIN_INSECURE: "",
        MYELIN_HUB: "",
        MYELIN_SITE: siteName,
      });
      for (let i = 0; i < 4; i++) {
        const p = new CliProc(
          "ip",
          [
            ...site.exec(i).slice(1),
            process.execPath,
            CLI,
            "hub",
            "--listen",
            "tcp://0.0.0.0:7447",
            "--advertise-address",
            site.hosts[i]!.addr,
            "--host",
            i === 3 ? "stranger" : `h${i + 1}`,
            "--scout",
            "--scout-interval-ms",
            "300",
            "--peer-lease-ms",
            "2000",
            "--no-store",
          ],
          { dir: dirs[i]!.dir, env: env(i) },
        );
        procs.push(p);
      }
      for (const p of procs) await p.waitFor(/scouting on 224\.0\.0\.224:7446 for site mysc-/, 30000);
      const scouting = Date.now();
      const status = (i: number): Status =>
        JSON.parse(
          execFileSync(
            ...([
              site.exec(i)[0]!,
              [...site.exec(i).slice(1), process.execPath, CLI, "site", "status", "--json"],
            ] as [string, string[]]),
            {
              env: env(i),
              encoding: "utf8",
              timeout: 20000,
            },
          ),
        ) as Status;
      for (let i = 0; i < 3; i++) {
        const want = ["h1", "h2", "h3"].filter((_, j) => j !== i);
        let last: Status | undefined;
        const end = Date.now() + 40000;
        for (;;) {
          try {
            last = status(i);
          } catch {
            last = undefined; // exit code 2 while a peer is not up yet
          }
          const up = [...new Set(last?.peers.filter((p) => p.state === "up").map((p) => p.host))].sort();
          if (JSON.stringify(up) === JSON.stringify(want)) break;
          if (Date.now() > end)
            assert.fail(`h${i + 1} did not peer with ${want.join(", ")}: ${JSON.stringify(last)}`);
          // No event to wait on from here: each `site status` run (a process start) paces the loop.
        }
        assert.ok(
          last!.peers.some((p) => p.found === "scouted"),
          JSON.stringify(last),
        );
        assert.ok(!last!.peers.some((p) => p.host === "stranger" && p.state === "up"), JSON.stringify(last));
        assert.ok((last!.scout?.untrusted ?? 0) >= 1, JSON.stringify(last));
        const line = await procs[i]!.waitFor(
          new RegExp(`announces key ${pubs[3]!.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}`),
          10000,
        );
        assert.match(line, /which this host does not trust: not peered .*myelin keys trust stranger /);
      }
      process.stdout.write(
        `# three hosts peered by scouting within ${Date.now() - scouting} ms of the last hub announcing (interval 300 ms; includes the site status runs)\n`,
      );
      // h1 refuses the stranger's handshakes (it trusts h1 and tries to connect).
      await procs[0]!.waitFor(new RegExp(`refused a connection from 10\\.213\\.77\\.4 with key`), 20000);
    } finally {
      for (const p of procs) p.kill();
      await Promise.all(procs.map((p) => p.exited));
      for (const d of dirs) d[Symbol.dispose]();
    }
  },
);
