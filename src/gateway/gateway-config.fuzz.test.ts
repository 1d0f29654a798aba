/**
 * Property tests of the MQTT gateway configuration parser (docs/fuzzing.md): valid configurations
 * read the same from YAML as from the object; anything else is ERR_BAD_CONFIG naming the field,
 * never another error.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { stringify as toYaml } from "yaml";
import { check, configValue, cyclic, parseOrCoded } from "../../test/fuzz-helpers.js";
import { ruleArb } from "../../test/fuzz-mapping.js";
import "../msgs/index.js";
import { parseGatewayConfig, parseGatewayConfigText } from "./gateway-config.js";

const NO_DIR = "/nonexistent-myelin-fuzz";
const HASH = "scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=";
const rec = <T>(f: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<Partial<T>> =>
  fc.record(f, { requiredKeys: [], noNullPrototype: true }) as fc.Arbitrary<Partial<T>>;
const port = fc.integer({ min: 0, max: 65535 });
const filter = fc.constantFrom("#", "a/+", "sensors/%c/#", "cmd/%u/+/x", "+/b");
const acl = rec({
  publish: fc.array(filter, { maxLength: 3 }),
  subscribe: fc.array(filter, { maxLength: 3 }),
  deny: rec({ publish: fc.array(filter, { maxLength: 2 }), subscribe: fc.array(filter, { maxLength: 2 }) }),
});
const validConfig = fc
  .record(
    {
      listeners: rec({
        tcp: rec({ port, host: fc.constantFrom("127.0.0.1", "::") }),
        ws: rec({ port, path: fc.constantFrom("/mqtt", "/") }),
      }),
      sitePrefix: fc.constantFrom("site-a", "a/b"),
      errorTopic: fc.constantFrom("/_gateway/errors", "/e"),
      mapping: fc.array(ruleArb("mqtt"), { maxLength: 3 }),
      auth: rec({
        allowAnonymous: fc.boolean(),
        anonymousAcl: acl,
        users: fc.uniqueArray(
          fc.record(
            { username: fc.stringMatching(/^[a-z]{1,6}$/), password: fc.constant(HASH), acl },
            { requiredKeys: ["username"], noNullPrototype: true },
          ),
          { selector: (u) => u.username, maxLength: 3 },
        ),
      }),
      limits: rec({
        maxMessageBytes: fc.integer({ min: 1, max: 1e9 }),
        maxInflight: fc.integer({ min: 1, max: 1000 }),
        maxKeepaliveSeconds: fc.nat(),
      }),
      fsync: fc.boolean(),
    },
    { requiredKeys: [], noNullPrototype: true },
  )
  // tcp and ws need a port each
  .filter(
    (c) =>
      (c.listeners?.tcp === undefined || c.listeners.tcp.port !== undefined) &&
      (c.listeners?.ws === undefined || c.listeners.ws.port !== undefined),
  );

const KEYS = [
  "listeners",
  "tcp",
  "tls",
  "ws",
  "port",
  "host",
  "path",
  "cert",
  "key",
  "ca",
  "requestCert",
  "sitePrefix",
  "errorTopic",
  "mapping",
  "myelin",
  "external",
  "type",
  "auth",
  "allowAnonymous",
  "anonymousAcl",
  "users",
  "username",
  "password",
  "acl",
  "publish",
  "subscribe",
  "deny",
  "certificates",
  "cn",
  "user",
  "limits",
  "maxMessageBytes",
  "maxClients",
  "fsync",
];

test("fuzz: a valid gateway config reads the same from YAML", () => {
  check("gateway config YAML round trip", 200, [validConfig], (c) => {
    const direct = parseGatewayConfig(c, NO_DIR);
    assert.deepEqual(parseGatewayConfigText(toYaml(c), NO_DIR), direct);
    assert.deepEqual(direct.mapping, c.mapping);
    assert.equal(direct.listeners.tcp?.port, c.listeners?.tcp?.port);
  });
});

test("fuzz: any other config is ERR_BAD_CONFIG", () => {
  check("arbitrary gateway configs", 800, [configValue(KEYS, 5)], (v) => {
    parseOrCoded("parseGatewayConfig", ["ERR_BAD_CONFIG"], v, () => parseGatewayConfig(v, NO_DIR));
  });
  // A valid config with one part replaced by anything.
  check(
    "valid config, one part replaced",
    600,
    [validConfig, fc.constantFrom(...KEYS), configValue(KEYS, 2), fc.nat()],
    (c, key, x, depth) => {
      const doc = JSON.parse(JSON.stringify(c)) as Record<string, unknown>;
      // replace `key` at the top level, or in the first map that has it
      let target: Record<string, unknown> = doc;
      const stack: unknown[] = [doc];
      for (let i = 0; i < depth % 6 && stack.length > 0; i++) {
        const o = stack.shift();
        if (typeof o === "object" && o !== null) {
          if (!Array.isArray(o)) target = o as Record<string, unknown>;
          stack.push(...Object.values(o));
        }
      }
      target[key] = x;
      parseOrCoded("parseGatewayConfig", ["ERR_BAD_CONFIG"], doc, () => parseGatewayConfig(doc, NO_DIR));
    },
  );
  check("gateway config text", 300, [fc.string({ maxLength: 100 }), fc.nat()], (text, at) => {
    const yaml =
      "listeners:\n  tcp: { port: 1883 }\nauth:\n  users:\n    - { username: a, acl: { publish: ['#'] } }\n";
    const i = at % (yaml.length + 1);
    for (const t of [text, yaml.slice(0, i) + text + yaml.slice(i)]) {
      parseOrCoded("parseGatewayConfigText", ["ERR_BAD_CONFIG"], t, () => parseGatewayConfigText(t, NO_DIR));
    }
  });
});

test("fuzz regressions: shapes that threw TypeError or were accepted", () => {
  const refused = (v: unknown, re: RegExp): void => {
    assert.throws(() => parseGatewayConfig(v, NO_DIR, "gw.yaml"), { code: "ERR_BAD_CONFIG", message: re });
  };
  // `auth.users: abc` threw "(a.users ?? []).entries is not a function".
  refused({ auth: { users: "abc" } }, /gw\.yaml: auth\.users: must be a list of users/);
  refused({ auth: { users: { a: 1 } } }, /auth\.users: must be a list/);
  refused({ auth: { certificates: 5 } }, /auth\.certificates: must be a list/);
  refused({ auth: { certificates: [{ cn: "x", user: 10n }] } }, /auth\.certificates\[0\]\.user/);
  // A port that JSON cannot show threw from JSON.stringify: a bigint, or a YAML alias to itself.
  refused({ listeners: { tcp: { port: 10n } } }, /listeners\.tcp\.port: must be a port number/);
  refused({ listeners: { tcp: { port: cyclic() } } }, /listeners\.tcp\.port: must be a port number.*a list/);
  assert.throws(() => parseGatewayConfigText("listeners:\n  tcp: { port: &p [*p] }\n", NO_DIR), {
    code: "ERR_BAD_CONFIG",
  });
  refused({ limits: { maxInflight: cyclic() } }, /limits\.maxInflight: must be an integer/);
  refused({ limits: { maxInflight: 10n } }, /limits\.maxInflight: must be an integer/);
  // Accepted silently: allowAnonymous "yes" (truthy), an inherited name as a limit, a password list.
  refused({ auth: { allowAnonymous: "yes" } }, /auth\.allowAnonymous: must be true or false/);
  refused({ limits: { toString: 5 } }, /limits\.toString: not a known limit/);
  refused({ limits: { constructor: 5 } }, /limits\.constructor: not a known limit/);
  refused(
    { auth: { users: [{ username: "u", password: [HASH] }] } },
    /auth\.users\[0\]\.password: must be a string/,
  );
});
