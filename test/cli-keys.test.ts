/**
 * `myelin keys …` as a user runs it, on a real key directory: exit codes and messages. One run of
 * the real binary (key creation); the rest through the CLI's main() in this process, which is the
 * same code without a process start per command.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { main } from "../src/tools/cli.js";

const CLI = fileURLToPath(new URL("../../bin/myelin", import.meta.url));

/** The real binary. */
function spawnMyelin(
  env: Record<string, string>,
  ...args: string[]
): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    env: { ...process.env, MYELIN_SITE_KEYS: "", ...env },
    encoding: "utf8",
    timeout: 30000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The CLI in this process, with `--keys-dir` from `env` (the environment is not touched). */
async function myelin(
  env: { MYELIN_KEYS_DIR: string },
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const withDir = args.includes("--keys-dir") ? args : [...args, "--keys-dir", env.MYELIN_KEYS_DIR];
  const code = await main(withDir, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, stdout: out.join("\n") + "\n", stderr: err.join("\n") };
}

test(
  "keys init, show, trust, list, revoke: files 0600 in a 0700 dir, clear errors, exit codes",
  { timeout: 60000 },
  async () => {
    const root = mkdtempSync(join(tmpdir(), "myelin-cli-keys-"));
    try {
      const env = { MYELIN_KEYS_DIR: join(root, "keys") };
      const show0 = await myelin(env, "keys", "show");
      assert.equal(show0.code, 1);
      assert.match(show0.stderr, /no CURVE keys .*myelin keys init/);

      const init = spawnMyelin(env, "keys", "init");
      assert.equal(init.code, 0, init.stderr);
      const pub = init.stdout.trim();
      assert.equal(pub.length, 40);
      assert.equal(statSync(join(root, "keys")).mode & 0o777, 0o700);
      assert.equal(statSync(join(root, "keys", "host.key")).mode & 0o777, 0o600);
      assert.equal((await myelin(env, "keys", "show")).stdout.trim(), pub);
      assert.equal((await myelin(env, "keys", "init")).code, 1);
      // --keys-dir wins over the environment.
      const other = await myelin(env, "keys", "init", "--keys-dir", join(root, "other"));
      assert.equal(other.code, 0);
      assert.notEqual(other.stdout.trim(), pub);

      const peer = other.stdout.trim();
      const trust = await myelin(env, "keys", "trust", "edge-1", peer);
      assert.equal(trust.code, 0, trust.stderr);
      assert.equal(statSync(join(root, "keys", "trusted.yaml")).mode & 0o777, 0o600);
      const bad = await myelin(env, "keys", "trust", "edge-2", "abc");
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /the key of edge-2: a CURVE key is 40 characters of Z85 text/);
      assert.equal((await myelin(env, "keys", "trust", "edge-2")).code, 2); // usage: missing KEY

      writeFileSync(join(root, "keys", "site.yaml"), `- name: cloud\n  key: "${pub}"\n`);
      const list = await myelin(env, "keys", "list");
      assert.equal(list.code, 0);
      assert.match(
        list.stdout,
        new RegExp(`edge-1 +${peer.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} +.*trusted\\.yaml`),
      );
      assert.match(list.stdout, /cloud .*site\.yaml/);
      const json = JSON.parse((await myelin(env, "keys", "list", "--json")).stdout) as { name: string }[];
      assert.deepEqual(
        json.map((k) => k.name),
        ["edge-1", "cloud"],
      );

      const revoke = await myelin(env, "keys", "revoke", "edge-1");
      assert.equal(revoke.code, 0);
      assert.match(revoke.stdout, /revoked edge-1/);
      const again = await myelin(env, "keys", "revoke", "edge-1");
      assert.equal(again.code, 1);
      assert.match(again.stderr, /no trusted key is named "edge-1"/);

      const help = await myelin(env, "keys", "trust", "--help");
      assert.equal(help.code, 0);
      assert.match(help.stdout, /Example:\n {2}myelin keys trust /);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  },
);

test("a key beginning with '-' (one of Z85's characters) is an argument, not an option", async () => {
  const root = mkdtempSync(join(tmpdir(), "myelin-cli-keys-dash-"));
  try {
    const env = { MYELIN_KEYS_DIR: join(root, "keys") };
    const key = "-" + "0".repeat(39);
    const trust = await myelin(env, "keys", "trust", "dash", key);
    assert.equal(trust.code, 0, trust.stderr);
    assert.match((await myelin(env, "keys", "list")).stdout, new RegExp(`dash\\s+${key}`));
    // Anything else beginning with '-' is still an option.
    const bad = await myelin(env, "keys", "trust", "other", "-x");
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown option '-x'/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
