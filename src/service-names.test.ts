/**
 * Guard of the internal services (docs/architecture.md, "A new internal service"): each one's
 * names live in its protocol module, next to its server and client, and nowhere else.
 *
 * Every string and template literal (comments do not count) of every non-test .ts file under src/,
 * bench/ and examples/ is read with the TypeScript parser; a literal holding a reserved name
 * outside the module that owns it fails the test, naming the file, the line and the module to use.
 * Tests may name the services literally: they pin the names on the wire.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** A reserved piece of a service or topic name, and the one file allowed to hold it. */
const OWNERS: readonly { readonly name: string; readonly owner: string; readonly use: string }[] = [
  { name: "/_store/", owner: "src/node/store-client.ts", use: "STORE_PROTOCOL / StoreClient" },
  {
    name: "/_supervisor/",
    owner: "src/orchestrator/supervisor-protocol.ts",
    use: "SUPERVISOR_PROTOCOL / supervisorClient",
  },
  {
    name: "/_gateway/",
    owner: "src/gateway/gateway-protocol.ts",
    use: "GATEWAY_PROTOCOL / gatewayClient / GATEWAY_ERRORS_TOPIC",
  },
  { name: "/_uplink/", owner: "src/gateway/uplink-protocol.ts", use: "UPLINK_PROTOCOL / fetchUplinkStatus" },
  {
    name: "/_bridge/",
    owner: "src/gateway/bridge-protocol.ts",
    use: "BRIDGE_PROTOCOL / fetchBridgeStatus",
  },
  { name: "/_hub/", owner: "src/hub/info.ts", use: "HUB_INFO_PROTOCOL / fetchHubInfo" },
  { name: "/_status/", owner: "src/node/status-service.ts", use: "statusProtocol / fetchNodeStatus" },
  {
    name: "/list_parameters",
    owner: "src/node/parameter-service.ts",
    use: "parameterProtocol / parameterClient",
  },
  {
    name: "/set_parameter",
    owner: "src/node/parameter-service.ts",
    use: "parameterProtocol / parameterClient",
  },
];

/** Every non-test .ts file under the given top-level folders, relative to the root with `/`. */
function files(dirs: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) {
        if (name !== "node_modules") walk(p);
      } else if (name.endsWith(".ts") && !name.endsWith(".test.ts") && !name.endsWith(".d.ts")) {
        out.push(relative(ROOT, p).split(sep).join("/"));
      }
    }
  };
  for (const d of dirs) if (existsSync(join(ROOT, d))) walk(join(ROOT, d));
  return out.sort();
}

/** The string and template literals of `text`, with the line of each (comments are not literals). */
function literals(file: string, text: string): { text: string; line: number }[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out: { text: string; line: number }[] = [];
  const visit = (node: ts.Node): void => {
    if (
      ts.isStringLiteral(node) ||
      ts.isNoSubstitutionTemplateLiteral(node) ||
      ts.isTemplateHead(node) ||
      ts.isTemplateMiddle(node) ||
      ts.isTemplateTail(node)
    ) {
      out.push({ text: node.text, line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** Every literal naming a reserved name outside its owner, as `file:line: …`. */
function offenders(paths: readonly string[], read: (path: string) => string): string[] {
  const out: string[] = [];
  for (const file of paths) {
    for (const lit of literals(file, read(file))) {
      for (const o of OWNERS) {
        if (file === o.owner || !lit.text.includes(o.name)) continue;
        out.push(
          `${file}:${lit.line}: ${JSON.stringify(lit.text)} names ${o.name}; use ${o.use} from ${o.owner}`,
        );
      }
    }
  }
  return out;
}

test("internal service names appear only in their protocol modules", () => {
  const paths = files(["src", "bench", "examples"]);
  assert.ok(paths.length > 50, `found only ${paths.length} files; is the scan broken?`);
  for (const o of OWNERS) {
    assert.ok(paths.includes(o.owner), `${o.owner}, the owner of ${o.name}, is missing: update OWNERS`);
  }
  const found = offenders(paths, (p) => readFileSync(join(ROOT, p), "utf8"));
  assert.deepEqual(found, [], `service names outside their protocol modules:\n${found.join("\n")}`);
});

test("the guard sees names in every kind of literal, and none in comments", () => {
  const sample = [
    "// a comment naming /_store/append is fine",
    "/** so is a doc comment: `/_supervisor/apply` */",
    'const a = "/_store/append";',
    "const b = '/_gateway/status';",
    "const c = `/_bridge/status`;",
    "const d = `${prefix}/_hub/info`;",
    "const e = `/${node}/list_parameters`;",
    "const f = `x ${y} /_supervisor/ps ${z} w`;",
    'const g = "an error naming e.g. /_gateway/errors";',
  ].join("\n");
  const found = offenders(["src/tools/sample.ts"], () => sample).map((l) => l.split(" names ")[0]);
  assert.deepEqual(found, [
    'src/tools/sample.ts:3: "/_store/append"',
    'src/tools/sample.ts:4: "/_gateway/status"',
    'src/tools/sample.ts:5: "/_bridge/status"',
    'src/tools/sample.ts:6: "/_hub/info"',
    'src/tools/sample.ts:7: "/list_parameters"',
    'src/tools/sample.ts:8: " /_supervisor/ps "',
    'src/tools/sample.ts:9: "an error naming e.g. /_gateway/errors"',
  ]);
  assert.deepEqual(
    offenders(["src/node/store-client.ts"], () => 'const a = "/_store/append";'),
    [],
    "the owner may name its services",
  );
});
