import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkToken, isLoopback, loadFoxgloveConfig, parseFoxgloveConfig } from "./config.js";

test("a config gives the settings it names, reading files relative to its folder", () => {
  const dir = mkdtempSync(join(tmpdir(), "myelin-fg-config-"));
  try {
    writeFileSync(join(dir, "token"), "0123456789abcdef0123\n");
    writeFileSync(
      join(dir, "fg.yaml"),
      [
        "host: 0.0.0.0",
        "port: 9000",
        "tokenFile: token",
        'topics: ["/camera/**", "/scan"]',
        'publishTopics: ["/cmd_vel"]',
        "publish: false",
        "sendBudgetBytes: 4194304",
        'maxHz: { "/camera/**": 10 }',
      ].join("\n"),
    );
    assert.deepEqual(loadFoxgloveConfig(join(dir, "fg.yaml")), {
      host: "0.0.0.0",
      port: 9000,
      token: "0123456789abcdef0123",
      topics: ["/camera/**", "/scan"],
      publishTopics: ["/cmd_vel"],
      maxHz: [{ pattern: "/camera/**", hz: 10 }],
      publish: false,
      sendBudgetBytes: 4194304,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a mistake in the config names the file, the field and what is accepted", () => {
  assert.throws(
    () => parseFoxgloveConfig({ prot: 1 }, "/", "fg.yaml"),
    /fg\.yaml: prot: not a known setting; known: host/,
  );
  assert.throws(
    () => parseFoxgloveConfig({ port: 70000 }, "/", "fg.yaml"),
    /fg\.yaml: port: must be an integer from 0 to 65535, got 70000/,
  );
  assert.throws(
    () => parseFoxgloveConfig({ topics: [] }, "/", "fg.yaml"),
    /topics: must be a non-empty list of topic patterns/,
  );
  assert.throws(
    () => parseFoxgloveConfig({ topics: ["camera"] }, "/", "fg.yaml"),
    /topics\[0\]: "camera" is not a topic pattern/,
  );
  assert.throws(
    () => parseFoxgloveConfig({ maxHz: { "/a": 0 } }, "/", "fg.yaml"),
    /maxHz\.\/a: must be a rate in Hz above 0/,
  );
  assert.throws(
    () => parseFoxgloveConfig({ token: "short" }, "/", "fg.yaml"),
    /token: a token must be 16 to 512 printable characters/,
  );
  assert.throws(
    () => parseFoxgloveConfig({ tokenFile: "missing" }, "/nonexistent", "fg.yaml"),
    /tokenFile: cannot read \/nonexistent\/missing/,
  );
  assert.throws(
    () => parseFoxgloveConfig({ tls: { cert: "c.pem" } }, "/nonexistent", "fg.yaml"),
    /tls\.cert: cannot read/,
  );
  assert.throws(
    () => parseFoxgloveConfig({ publish: "yes" }, "/", "fg.yaml"),
    /publish: must be true or false/,
  );
  assert.throws(() => parseFoxgloveConfig([1], "/", "fg.yaml"), /must be a map of settings/);
  assert.throws(
    () => loadFoxgloveConfig("/nonexistent/fg.yaml"),
    /cannot read the Foxglove config \/nonexistent\/fg\.yaml/,
  );
});

test("tokens and loopback addresses", () => {
  assert.equal(checkToken("abcdefghijklmnop", "x"), "abcdefghijklmnop");
  assert.throws(
    () => checkToken("has space in it 0123", "--foxglove-token"),
    /--foxglove-token: a token must be/,
  );
  assert.ok(isLoopback("127.0.0.1") && isLoopback("localhost") && isLoopback("::1"));
  assert.ok(!isLoopback("0.0.0.0") && !isLoopback("10.0.0.5"));
});
