/** The key store on real files: modes, trust and revoke, site files, bad files, and the Z85 codec. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkCurveKeyPair, generateCurveKeyPair } from "./curve-key.js";
import { curvePeerId, verifyCurvePeerId } from "./curve-peer-id.js";
import { KeyStore, keysDir } from "./key-store.js";
import { z85Decode, z85Encode } from "./z85.js";

function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = mkdtempSync(join(tmpdir(), "myelin-keys-"));
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

test("Z85 matches the RFC 32 test vector and refuses bad text", () => {
  const bytes = Buffer.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]);
  assert.equal(z85Encode(bytes), "HelloWorld");
  assert.deepEqual(z85Decode("HelloWorld"), bytes);
  assert.equal(z85Decode("Hello").length, 4);
  assert.throws(() => z85Decode("Hell"), /multiple of 5/);
  assert.throws(() => z85Decode("Hell~"), /is not Z85/);
  assert.throws(() => z85Decode("#####"), /out of range/);
  assert.throws(() => z85Encode(Buffer.alloc(3)), /multiples of 4/);
});

test("generated pairs are valid CURVE pairs; a mismatched pair is named", () => {
  const a = generateCurveKeyPair();
  const b = generateCurveKeyPair();
  assert.equal(a.publicKey.length, 40);
  checkCurveKeyPair(a, "a");
  assert.throws(
    () => checkCurveKeyPair({ publicKey: b.publicKey, secretKey: a.secretKey }, "mixed"),
    /mixed: the public key does not belong/,
  );
});

test("a peer id proves its key to the listener only; altered ids prove nothing", () => {
  const server = generateCurveKeyPair();
  const other = generateCurveKeyPair();
  const client = generateCurveKeyPair();
  const id = Buffer.from(curvePeerId(client, server.publicKey), "latin1");
  assert.equal(verifyCurvePeerId(id, server.secretKey), client.publicKey);
  assert.equal(verifyCurvePeerId(id, other.secretKey), undefined, "made for another listener");
  const altered = Buffer.from(id);
  altered[45] = altered[45] === 0x30 ? 0x31 : 0x30; // a nonce digit
  assert.equal(verifyCurvePeerId(altered, server.secretKey), undefined);
  assert.equal(verifyCurvePeerId(id.subarray(0, 60), server.secretKey), undefined);
  assert.equal(verifyCurvePeerId(Buffer.alloc(99, 0x7e), server.secretKey), undefined);
});

test("keys init makes a 0700 directory and a 0600 key file; a second init needs --force", () => {
  using t = tempDir();
  const s = new KeyStore(join(t.dir, "a", "keys"), undefined);
  assert.equal(s.hasHostKeys(), false);
  assert.throws(() => s.hostKeys(), /no CURVE keys .*'myelin keys init'/);
  const pair = s.init();
  assert.equal(statSync(s.dir).mode & 0o777, 0o700);
  assert.equal(statSync(join(s.dir, "host.key")).mode & 0o777, 0o600);
  assert.deepEqual(s.hostKeys(), pair);
  assert.throws(() => s.init(), /already holds this host's keys/);
  const again = s.init(true);
  assert.notEqual(again.publicKey, pair.publicKey);
  // A key file others can read is refused, naming the fix.
  chmodSync(join(s.dir, "host.key"), 0o644);
  assert.throws(() => s.hostKeys(), /can be read by other users.*chmod 600/);
  chmodSync(join(s.dir, "host.key"), 0o600);
  writeFileSync(join(s.dir, "host.key"), "garbage\n", { mode: 0o600 });
  assert.throws(() => s.hostKeys(), /expected the lines 'public: KEY' and 'secret: KEY'/);
});

test("trust, list, revoke; names resolve to keys; changes count at once for isTrusted", () => {
  using t = tempDir();
  const s = new KeyStore(t.dir, undefined);
  const a = generateCurveKeyPair().publicKey;
  const b = generateCurveKeyPair().publicKey;
  assert.equal(s.isTrusted(a), false);
  s.trust("edge-1", a);
  assert.equal(statSync(join(t.dir, "trusted.yaml")).mode & 0o777, 0o600);
  assert.equal(s.isTrusted(a), true);
  assert.equal(s.nameOf(a), "edge-1");
  // Another store on the same directory (another process: a running hub) sees it too.
  const hub = new KeyStore(t.dir, undefined);
  assert.equal(hub.isTrusted(a), true);
  s.trust("edge-2", b);
  assert.equal(hub.isTrusted(b), true);
  assert.deepEqual(
    s.trustedList().map((k) => k.name),
    ["edge-1", "edge-2"],
  );
  assert.throws(() => s.trust("edge-1", b), /edge-1 already names key/);
  assert.throws(() => s.trust("bad name", a), /name "bad name" is not valid/);
  assert.throws(() => s.trust("x", "not-a-key"), /40 characters of Z85/);
  assert.equal(s.resolve("edge-2", "MYELIN_HUB_KEY"), b);
  assert.equal(s.resolve(a, "MYELIN_HUB_KEY"), a);
  assert.throws(
    () => s.resolve("nope", "MYELIN_HUB_KEY"),
    /MYELIN_HUB_KEY: "nope" is neither a trusted key's name/,
  );
  assert.deepEqual(s.revoke("edge-1"), { name: "edge-1", key: a });
  assert.equal(hub.isTrusted(a), false);
  assert.throws(() => s.revoke("edge-1"), /no trusted key is named "edge-1"; trusted: edge-2/);
});

test("a site file adds trusted keys; a bad one is an error naming the file and entry", () => {
  using t = tempDir();
  const site = join(t.dir, "site-keys.yaml");
  const a = generateCurveKeyPair().publicKey;
  const b = generateCurveKeyPair().publicKey;
  writeFileSync(site, `- name: cloud\n  key: "${a}"\n`);
  writeFileSync(join(t.dir, "site.yaml"), `- name: edge\n  key: "${b}"\n`);
  const s = new KeyStore(t.dir, site);
  assert.equal(s.isTrusted(a), true);
  assert.equal(s.isTrusted(b), true);
  assert.deepEqual(
    s.allTrusted().map((k) => [k.name, k.source]),
    [
      ["edge", join(t.dir, "site.yaml")],
      ["cloud", site],
    ],
  );
  assert.throws(() => s.revoke("cloud"), /revoked by editing that file/);
  writeFileSync(site, `- name: cloud\n  key: short\n`);
  assert.throws(() => s.isTrusted(a), /site-keys\.yaml: entry 1 \(cloud\) key: a CURVE key is 40 characters/);
  // A key starting with a character YAML reads as syntax, unquoted: the error says to quote it.
  writeFileSync(site, `- name: cloud\n  key: &k\n`);
  assert.throws(() => s.isTrusted(a), /write the key in double quotes/);
  writeFileSync(site, `cloud: "${a}"\n`);
  assert.throws(() => s.allTrusted(), /must be a YAML list/);
  writeFileSync(site, `- name: cloud\n  key: "${a}"\n  role: admin\n`);
  assert.throws(() => s.allTrusted(), /entry 1: unknown field role/);
  writeFileSync(site, `- [`);
  assert.throws(() => s.allTrusted(), /not valid YAML/);
});

test("the key directory comes from MYELIN_KEYS_DIR, MYELIN_CONFIG_DIR, XDG_CONFIG_HOME, then ~/.config", () => {
  assert.equal(keysDir({ MYELIN_KEYS_DIR: "/k" }), "/k");
  assert.equal(keysDir({ MYELIN_CONFIG_DIR: "/c" }), "/c/keys");
  assert.equal(keysDir({ XDG_CONFIG_HOME: "/x" }), "/x/myelin/keys");
  assert.match(keysDir({}), /\.config\/myelin\/keys$/);
});
