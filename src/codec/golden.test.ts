// Conformance: the canonical messages of golden.ts against the files in conformance/codec/.
// MYELIN_UPDATE_GOLDEN=1 rewrites the files (after a deliberate change of the wire format).
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import type { MessageType } from "../msgs/schema.js";
import { goldenCases } from "./golden.js";
import { fromJson, toJson } from "./json.js";
import { decodeFrames, encodeFrames, msgpackCodec } from "./msgpack.js";

const UPDATE = process.env.MYELIN_UPDATE_GOLDEN === "1";

/** conformance/codec/ of the repository: searched upwards from the working directory, then from this file. */
function goldenDir(): string {
  for (const start of [process.cwd(), dirname(fileURLToPath(import.meta.url))]) {
    let dir = resolve(start);
    for (;;) {
      if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "conformance"))) {
        return join(dir, "conformance", "codec");
      }
      const up = dirname(dir);
      if (up === dir) break;
      dir = up;
    }
  }
  throw new Error("conformance/ not found: run the tests from the repository");
}

const dir = goldenDir();
if (UPDATE) mkdirSync(dir, { recursive: true });

function check(file: string, actual: Uint8Array | string): Buffer {
  const path = join(dir, file);
  if (UPDATE) writeFileSync(path, actual);
  assert.ok(existsSync(path), `${path} is missing; run with MYELIN_UPDATE_GOLDEN=1 to create it`);
  return readFileSync(path);
}

for (const c of goldenCases()) {
  test(`golden ${c.name}`, () => {
    const type: MessageType<unknown> = c.type;
    type.assert(c.value);

    // msgpack: byte for byte, and decodes back to the canonical value
    const encoded = msgpackCodec.encode(c.value);
    const golden = check(`${c.name}.msgpack`, encoded);
    assert.equal(Buffer.from(encoded).toString("hex"), golden.toString("hex"), `${c.name}.msgpack differs`);
    const decoded = msgpackCodec.decode(new Uint8Array(golden));
    assert.deepEqual(decoded, c.value);
    type.assert(decoded);

    // JSON face: value for value (the file may be reformatted), and back
    const json = toJson(c.type, c.value);
    const text = `${JSON.stringify(json, null, 2)}\n`;
    const goldenJson: unknown = JSON.parse(check(`${c.name}.json`, text).toString("utf8"));
    assert.deepEqual(json, goldenJson, `${c.name}.json differs`);
    assert.deepEqual(fromJson(c.type, goldenJson), c.value);

    // multi-frame body
    if (c.blobThreshold !== undefined) {
      const frames = encodeFrames(c.value, c.blobThreshold);
      assert.ok(frames.length > 1);
      const body = check(`${c.name}.body.msgpack`, frames[0]!);
      assert.equal(
        Buffer.from(frames[0]!).toString("hex"),
        body.toString("hex"),
        `${c.name}.body.msgpack differs`,
      );
      assert.deepEqual(decodeFrames([new Uint8Array(body), ...frames.slice(1)]), c.value);
    }
  });
}
