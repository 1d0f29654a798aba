import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateCurveKeyPair } from "./curve-key.js";
import { KeyStore } from "./key-store.js";
import { TrustWatch, type TrustChange } from "./trust-watch.js";

function keyDir(): { store: KeyStore; dir: string } & Disposable {
  const dir = mkdtempSync(join(tmpdir(), "myelin-trust-watch-"));
  const store = new KeyStore(join(dir, "keys"), join(dir, "site.yaml"));
  store.init();
  return { store, dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The next change a subscriber is told, or a rejection after `ms`. */
function nextChange(w: TrustWatch, ms: number): { change: Promise<TrustChange>; stop: () => void } {
  let stop = (): void => {};
  const change = new Promise<TrustChange>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no trust change within ${ms} ms`)), ms);
    stop = w.subscribe((c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  return { change, stop };
}

test("revoking and trusting again are told to subscribers, from the watch of the key directory", async () => {
  using k = keyDir();
  const a = generateCurveKeyPair().publicKey;
  k.store.trust("a", a);
  const w = new TrustWatch(k.store, { pollMs: 60_000 }); // only fs.watch can tell within the bound
  const first = nextChange(w, 5000);
  k.store.revoke("a");
  assert.deepEqual(await first.change, { revoked: [a], trusted: [] });
  first.stop();
  const second = nextChange(w, 5000);
  k.store.trust("a", a);
  assert.deepEqual(await second.change, { revoked: [], trusted: [a] });
  second.stop();
});

test("a site file counts; check() reads at once; a list that cannot be read revokes everything it held", () => {
  using k = keyDir();
  const b = generateCurveKeyPair().publicKey;
  writeFileSync(join(k.dir, "site.yaml"), `- name: b\n  key: "${b}"\n`);
  const errors: string[] = [];
  const w = new TrustWatch(k.store, { pollMs: 60_000, onError: (e) => errors.push(e.message) });
  const seen: TrustChange[] = [];
  const stop = w.subscribe((c) => seen.push(c));
  writeFileSync(join(k.dir, "site.yaml"), "not: [a list\n");
  w.check();
  assert.deepEqual(seen, [{ revoked: [b], trusted: [] }]);
  assert.match(errors[0] ?? "", /site\.yaml: not valid YAML/);
  writeFileSync(join(k.dir, "site.yaml"), `- name: b\n  key: "${b}"\n`);
  w.check();
  assert.deepEqual(seen[1], { revoked: [], trusted: [b] });
  w.check(); // nothing changed: nothing told
  assert.equal(seen.length, 2);
  stop();
});
