/**
 * Fuzzing what `record` reads from outside (docs/fuzzing.md): CDR messages (`cdrDecode`), viewer JSON
 * (`viewerJsonDecode`), and whole MCAP files, mutated from the golden files, through `bagInfo` and
 * `repairBag`. Any bytes give a value or a coded error (ERR_DECODE, ERR_VALIDATION), never another
 * exception, and quickly.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { FUZZ_SEED, Rng, check, fuzzRuns, mutate, parseOrCoded } from "../../test/fuzz-helpers.js";
import { MyelinError } from "../errors.js";
import { sensor_msgs, std_msgs, type MessageType } from "../msgs/index.js";
import { bagInfo } from "./bag-info.js";
import { repairBag } from "./bag-repair.js";
import { cdrDecode, cdrEncode } from "./cdr.js";
import { viewerJsonDecode } from "./viewer-json.js";

const CDR_TYPES = [
  sensor_msgs.Image,
  sensor_msgs.CompressedImage,
  sensor_msgs.PointCloud2,
] as MessageType<unknown>[];

test("cdrDecode: any bytes give a message or ERR_DECODE", () => {
  check(
    "cdrDecode(arbitrary)",
    2000,
    [fc.integer({ min: 0, max: 2 }), fc.uint8Array({ maxLength: 256 })],
    (t, bytes) => {
      const withHeader = Uint8Array.from([0, 1, 0, 0, ...bytes]);
      parseOrCoded("cdrDecode", ["ERR_DECODE"], withHeader, () => cdrDecode(CDR_TYPES[t]!, withHeader));
      parseOrCoded("cdrDecode", ["ERR_DECODE"], bytes, () => cdrDecode(CDR_TYPES[t]!, bytes));
    },
  );
});

test("cdrDecode: every cut of a valid message is ERR_DECODE, the whole is the message", () => {
  const img = sensor_msgs.Image.create({
    header: { frame_id: "cam" },
    height: 1,
    width: 3,
    encoding: "rgb8",
    step: 9,
    data: new Uint8Array(9).fill(5),
  });
  const bytes = cdrEncode(sensor_msgs.Image, img);
  for (let cut = 0; cut < bytes.length - 3; cut++) {
    assert.throws(
      () => cdrDecode(sensor_msgs.Image, bytes.subarray(0, cut)),
      (e: unknown) => e instanceof MyelinError && e.code === "ERR_DECODE",
      `cut at ${cut}`,
    );
  }
  assert.equal(cdrDecode(sensor_msgs.Image, bytes).width, 3);
});

test("viewerJsonDecode: any bytes give a message, ERR_DECODE or ERR_VALIDATION", () => {
  check(
    "viewerJsonDecode(arbitrary)",
    2000,
    [
      fc.oneof(
        fc.uint8Array({ maxLength: 64 }),
        fc.json().map((j) => Buffer.from(j)),
      ),
    ],
    (bytes) => {
      parseOrCoded("viewerJsonDecode", ["ERR_DECODE", "ERR_VALIDATION"], bytes, () =>
        viewerJsonDecode(std_msgs.String, bytes),
      );
      parseOrCoded("viewerJsonDecode", ["ERR_DECODE", "ERR_VALIDATION"], bytes, () =>
        viewerJsonDecode(sensor_msgs.Image, bytes),
      );
    },
  );
});

function goldenDir(): string {
  for (const start of [process.cwd(), dirname(fileURLToPath(import.meta.url))]) {
    let dir = resolve(start);
    for (;;) {
      if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "conformance")))
        return join(dir, "conformance", "mcap");
      const up = dirname(dir);
      if (up === dir) break;
      dir = up;
    }
  }
  throw new Error("conformance/ not found: run the tests from the repository");
}

test(
  "bag info and bag repair on mutated MCAP files: a result or ERR_DECODE, never a crash",
  { timeout: 120000 },
  async () => {
    const dir = goldenDir();
    const corpus = readdirSync(dir)
      .filter((f) => f.endsWith(".mcap"))
      .map((f) => readFileSync(join(dir, f)));
    const tmp = mkdtempSync(join(tmpdir(), "myelin-mcap-fuzz-"));
    const rng = new Rng(FUZZ_SEED);
    const runs = fuzzRuns(60);
    try {
      for (let i = 0; i < runs; i++) {
        const input = corpus[i % corpus.length]!;
        const { bytes, how } = mutate(rng, input, corpus);
        const path = join(tmp, `m${i}.mcap`);
        writeFileSync(path, bytes);
        for (const [what, run] of [
          ["bagInfo", () => bagInfo(path)],
          ["repairBag", () => repairBag(path, join(tmp, `r${i}.mcap`))],
        ] as const) {
          const t0 = performance.now();
          try {
            await run();
          } catch (e) {
            if (!(e instanceof MyelinError) || e.code !== "ERR_DECODE") {
              throw new Error(
                `${what} threw ${String(e)} on a mutated file (${how}); MYELIN_FUZZ_SEED=${FUZZ_SEED}`,
                { cause: e },
              );
            }
          }
          assert.ok(performance.now() - t0 < 5000, `${what} took too long (${how})`);
        }
        rmSync(path, { force: true });
        rmSync(join(tmp, `r${i}.mcap`), { force: true });
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  },
);
