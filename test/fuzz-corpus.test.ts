/**
 * The corpus mutation loop (docs/fuzzing.md): every valid input checked in for a parser — the
 * golden files under conformance/{wire,codec,store,launch} and the corpus under
 * conformance/corpus/<parser>/ — must parse as it is; then it is mutated (bits flipped, bytes set,
 * inserted, deleted, duplicated, 4-byte lengths set to 0xffffffff…, truncated, spliced with another
 * input of the same parser) a fixed number of times with a fixed seed, and every mutant must parse
 * or throw a MyelinError with the parser's documented code, quickly. A failure names the seed, the
 * file, the iteration and the mutations, so it reproduces with MYELIN_FUZZ_SEED.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { FUZZ_SEED, fuzzRuns, mutate, parseOrCoded, Rng } from "./fuzz-helpers.js";
import type { ErrorCode } from "../src/errors.js";
import { decodeCompiled, MISMATCH } from "../src/codec/compiled-decoder.js";
import { goldenCases } from "../src/codec/golden.js";
import { fromJson, jsonCodec } from "../src/codec/json.js";
import { decodeFrames, msgpackCodec } from "../src/codec/msgpack.js";
import { parseBridgeConfig } from "../src/gateway/bridge-config.js";
import { parseGatewayConfigText } from "../src/gateway/gateway-config.js";
import { decodeExternal, TopicMap, type ResolvedMapping } from "../src/gateway/mapping.js";
import { parseTwinRequest, twinFromFile } from "../src/gateway/twin-document.js";
import { lookupType, type MessageType } from "../src/msgs/index.js";
import { decodeHubToNode, decodeNodeToHub } from "../src/node/control-protocol.js";
import { loadSpec } from "../src/orchestrator/spec.js";
import { decodeConsumerState } from "../src/store/consumer-state-file.js";
import { SegmentReader, type SegmentRecord } from "../src/store/segment-format.js";
import { parseStoreConfigText, parseTopicConfig } from "../src/store/topic-config.js";
import { FrameKind, forEachRecord, parseFrame } from "../src/transport/frame.js";

const ROOT = fileURLToPath(new URL("../../conformance/", import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), "myelin-fuzz-corpus-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Files of `dir` (under conformance/) whose names pass `keep`. */
function files(dir: string, keep: (name: string) => boolean = () => true): string[] {
  const d = join(ROOT, dir);
  if (!existsSync(d)) return [];
  return readdirSync(d)
    .filter((n) => keep(n) && !n.endsWith(".md"))
    .sort()
    .map((n) => join(d, n));
}

/** A stable 32-bit hash of a file name: each file gets its own stream of mutations. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

const text = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("utf8");

interface Target {
  /** Parser name, for messages. */
  name: string;
  /** The codes the parser may throw. */
  codes: readonly ErrorCode[];
  /** The corpus files. */
  corpus: string[];
  /** Mutations per file by default (MYELIN_FUZZ_RUNS overrides). */
  runs: number;
  /** Parses one input; must not throw anything but a MyelinError with `codes`. */
  parse: (bytes: Uint8Array, file: string) => unknown;
  /** Extra check of a mutant's result against the original file's (optional). */
  compare?: (mutant: unknown, original: unknown, file: string) => void;
}

/** Runs the mutation loop of one parser. */
function fuzzCorpus(t: Target): void {
  assert.ok(t.corpus.length > 0, `${t.name}: no corpus files`);
  const originals = t.corpus.map((f) => new Uint8Array(readFileSync(f)));
  const parsed = t.corpus.map((f, i) => {
    const r = parseOrCoded(`${t.name} on ${basename(f)}`, [], originals[i], () => t.parse(originals[i]!, f));
    assert.ok(r.ok);
    return r.value;
  });
  const runs = fuzzRuns(t.runs);
  t.corpus.forEach((file, i) => {
    const rng = new Rng(FUZZ_SEED ^ hash(`${t.name}/${basename(file)}`));
    for (let it = 0; it < runs; it++) {
      let bytes: Uint8Array = originals[i]!;
      const hows: string[] = [];
      const k = 1 + rng.int(3);
      for (let m = 0; m < k; m++) {
        const x = mutate(rng, bytes, originals);
        bytes = x.bytes;
        hows.push(x.how);
      }
      try {
        const r = parseOrCoded(t.name, t.codes, bytes, () => t.parse(bytes, file));
        // A splice joins two valid inputs, which may well be a third valid one: compare only the others.
        if (r.ok && t.compare !== undefined && !hows.some((h) => h.startsWith("splice")))
          t.compare(r.value, parsed[i], file);
      } catch (e) {
        throw new Error(
          `${t.name}: mutant ${it} of ${basename(file)} (MYELIN_FUZZ_SEED=${FUZZ_SEED}, mutations: ${hows.join("; ")}):\n${(e as Error).message}`,
          { cause: e },
        );
      }
    }
  });
}

// ---- wire frames ----
test("corpus fuzz: wire frames", () => {
  fuzzCorpus({
    name: "parseFrame",
    codes: ["ERR_DECODE"],
    corpus: [...files("wire"), ...files("corpus/wire")],
    runs: 400,
    parse: (b) => {
      const f = parseFrame([Buffer.from(b), Buffer.from("body")]);
      return f.kind === FrameKind.Data ? forEachRecord(f.frame, () => undefined) : f;
    },
  });
});

// ---- control protocol ----
test("corpus fuzz: control protocol", () => {
  fuzzCorpus({
    name: "decodeNodeToHub/decodeHubToNode",
    codes: ["ERR_DECODE"],
    corpus: files("corpus/control"),
    runs: 300,
    parse: (b, file) => {
      if (basename(file).startsWith("node-")) return decodeNodeToHub(b);
      return decodeHubToNode(b);
    },
  });
});

// ---- codecs ----
const cases = goldenCases();
const typeOfCase = (file: string): MessageType<unknown> | undefined =>
  cases.find((c) => basename(file).split(".")[0] === c.name)?.type;

test("corpus fuzz: msgpack codec", () => {
  fuzzCorpus({
    name: "msgpackCodec.decode/decodeFrames",
    codes: ["ERR_DECODE"],
    corpus: [...files("codec", (n) => n.endsWith(".msgpack")), ...files("corpus/msgpack")],
    runs: 300,
    parse: (b) => {
      // bodies with blob references need their frames: try 0 to 2 of them
      let last: unknown;
      for (let k = 0; k <= 2; k++) {
        try {
          return k === 0
            ? msgpackCodec.decode(b)
            : decodeFrames([b, ...Array.from({ length: k }, () => new Uint8Array(4))]);
        } catch (e) {
          last = e;
        }
      }
      throw last;
    },
  });
});

test("corpus fuzz: compiled decoder", () => {
  fuzzCorpus({
    name: "decodeCompiled",
    codes: [],
    corpus: files("codec", (n) => n.endsWith(".msgpack") && !n.endsWith(".body.msgpack")),
    runs: 300,
    parse: (b, file) => {
      const type = typeOfCase(file)!;
      const v = decodeCompiled(type, b);
      if (v === MISMATCH) return v;
      assert.ok(type.validate(v).ok, "decodeCompiled returned an invalid message");
      assert.deepEqual(v, msgpackCodec.decode(b), "compiled and generic decoders disagree");
      return v;
    },
  });
});

test("corpus fuzz: JSON codec and fromJson", () => {
  fuzzCorpus({
    name: "jsonCodec.decode",
    codes: ["ERR_DECODE"],
    corpus: files("corpus/json"),
    runs: 300,
    parse: (b) => jsonCodec.decode(b),
  });
  fuzzCorpus({
    name: "fromJson",
    codes: ["ERR_VALIDATION"],
    corpus: files("codec", (n) => n.endsWith(".json")),
    runs: 300,
    parse: (b, file) => {
      let value: unknown;
      try {
        value = JSON.parse(text(b));
      } catch {
        return undefined; // not JSON: fromJson takes parsed values
      }
      return fromJson(typeOfCase(file)!, value);
    },
  });
});

// ---- store ----
function readSegment(b: Uint8Array): SegmentRecord[] {
  const reader = new SegmentReader();
  reader.push(b);
  reader.end();
  const out: SegmentRecord[] = [];
  for (let guard = 0; guard <= b.length; guard++) {
    const r = reader.next();
    if (r === undefined || r.torn) return out;
    out.push(r);
  }
  throw new Error("SegmentReader returned more records than there are bytes");
}

test("corpus fuzz: segment reader", () => {
  fuzzCorpus({
    name: "SegmentReader",
    codes: ["ERR_DECODE"],
    corpus: [...files("store", (n) => n.endsWith(".seg")), ...files("corpus/segment")],
    runs: 400,
    parse: readSegment,
    // A damaged segment yields a prefix of the records written, never another record.
    compare: (mutant, original) => {
      const m = mutant as SegmentRecord[];
      const o = original as SegmentRecord[];
      assert.ok(m.length <= o.length, "more records than the original");
      m.forEach((r, i) => {
        assert.equal(r.seq, o[i]!.seq);
        assert.deepEqual(Buffer.from(r.payload), Buffer.from(o[i]!.payload));
        assert.deepEqual(Buffer.from(r.header), Buffer.from(o[i]!.header));
      });
    },
  });
});

test("corpus fuzz: consumer state files", () => {
  fuzzCorpus({
    name: "decodeConsumerState",
    codes: ["ERR_STATE_CORRUPT"],
    corpus: [...files("store", (n) => n.startsWith("consumer-state")), ...files("corpus/consumer-state")],
    runs: 400,
    parse: (b) => decodeConsumerState(b),
  });
});

test("corpus fuzz: store and topic configs", () => {
  fuzzCorpus({
    name: "parseStoreConfigText",
    codes: ["ERR_BAD_CONFIG"],
    corpus: files("corpus/store-config"),
    runs: 150,
    parse: (b) => parseStoreConfigText(text(b), "store.yaml"),
  });
  fuzzCorpus({
    name: "parseTopicConfig",
    codes: ["ERR_BAD_CONFIG"],
    corpus: files("corpus/topic-config"),
    runs: 300,
    parse: (b) => {
      let v: unknown;
      try {
        v = JSON.parse(text(b));
      } catch {
        return undefined;
      }
      return parseTopicConfig(v, "topic.json: config");
    },
  });
});

// ---- launch spec ----
test("corpus fuzz: launch specs", () => {
  // A copy of the good specs, so includes and modules resolve; mutants are written next to them.
  const dir = join(tmp, "launch");
  cpSync(join(ROOT, "launch", "good"), dir, { recursive: true });
  const proto = Object.getOwnPropertyNames(Object.prototype).sort().join(",");
  fuzzCorpus({
    name: "loadSpec",
    codes: ["ERR_SPEC"],
    corpus: files("launch/good", (n) => n.endsWith(".yaml")),
    runs: 60,
    parse: (b, file) => {
      const target = join(dir, `mutant-${basename(file)}`);
      writeFileSync(target, b);
      try {
        return loadSpec(target, {
          checkFiles: false,
          environment: basename(file).startsWith("with-include") ? "prod" : undefined,
        });
      } finally {
        assert.equal(
          Object.getOwnPropertyNames(Object.prototype).sort().join(","),
          proto,
          "Object.prototype was modified",
        );
      }
    },
  });
});

// ---- gateway ----
test("corpus fuzz: gateway and bridge configs", () => {
  fuzzCorpus({
    name: "parseGatewayConfigText",
    codes: ["ERR_BAD_CONFIG"],
    corpus: files("corpus/gateway"),
    runs: 80,
    parse: (b) => parseGatewayConfigText(text(b), "/nonexistent-myelin-fuzz", "gateway.yaml"),
  });
  fuzzCorpus({
    name: "parseBridgeConfig",
    codes: ["ERR_BAD_CONFIG"],
    corpus: files("corpus/bridge"),
    runs: 80,
    parse: (b) => parseBridgeConfig(text(b), "bridges.yaml"),
  });
});

test("corpus fuzz: MQTT ⇄ Myelin mapping", () => {
  const map = new TopicMap(
    [
      {
        myelin: "/sensors/+/temperature",
        external: "sensors/+/temperature",
        type: "sensor_msgs/Temperature",
      },
      { myelin: "/cmd/+/#", external: "cmd/+/#", type: "std_msgs/String", direction: "in" },
      { myelin: "/raw/+", external: "raw/+", type: "myelin_msgs/RawPayload", format: "raw" },
      { myelin: "/twist", external: "twist", type: "geometry_msgs/Twist" },
      { myelin: "/+/#", external: "+/#", type: "std_msgs/String", direction: "in" },
    ],
    { syntax: "mqtt", sitePrefix: "site-a" },
  );
  const base = map.rules[0]!;
  const ruleFor = (file: string): ResolvedMapping => {
    const name = basename(file, ".json").replace(".", "/");
    // registered standard types, or the conformance-only Everything type
    const type = lookupType(name) ?? cases.find((c) => c.type.name === name)?.type;
    assert.ok(type !== undefined, `no type for ${file}`);
    return { ...base, type: name, messageType: type };
  };
  fuzzCorpus({
    name: "decodeExternal",
    codes: [],
    corpus: files("corpus/mapping", (n) => n.endsWith(".json")),
    runs: 300,
    parse: (b, file) => {
      const rule = ruleFor(file);
      const d = decodeExternal(rule, b);
      if (d.ok) assert.ok(rule.messageType.validate(d.message).ok, "decodeExternal gave an invalid message");
      return d;
    },
  });
  const validTopic = /^(\/[A-Za-z0-9_.~-]+)+$/;
  fuzzCorpus({
    name: "TopicMap",
    codes: [],
    corpus: files("corpus/mapping", (n) => n.endsWith(".txt")),
    runs: 300,
    parse: (b) => {
      for (const line of text(b).split("\n")) {
        const m = map.matchInbound(line);
        if (m.ok) assert.match(m.myelinTopic, validTopic);
        const o = map.outbound(line.startsWith("/") ? line : `/${line}`);
        if (o !== undefined) assert.ok(o.externalTopic.startsWith("site-a/"));
      }
      return true;
    },
  });
});

// ---- device twins ----
test("corpus fuzz: device twin requests and files", () => {
  const limits = { maxStateBytes: 8192, maxDepth: 8 };
  fuzzCorpus({
    name: "parseTwinRequest/twinFromFile",
    codes: ["ERR_PAYLOAD_TOO_LARGE", "ERR_INVALID_ARGUMENT", "ERR_VALIDATION", "ERR_STATE_CORRUPT"],
    corpus: files("corpus/twins"),
    runs: 300,
    parse: (b, file) => {
      const name = basename(file);
      if (name.endsWith(".twin")) return twinFromFile(text(b), "pump-7");
      return parseTwinRequest("pump-7", name.startsWith("get-") ? "get" : "reported", b, limits);
    },
  });
});
