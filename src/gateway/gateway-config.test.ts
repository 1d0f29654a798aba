import { test } from "node:test";
import assert from "node:assert/strict";
import { MyelinError } from "../errors.js";
import "../msgs/index.js";
import { parseGatewayConfig } from "./gateway-config.js";

function refused(value: unknown, re: RegExp): void {
  assert.throws(
    () => parseGatewayConfig(value, "/nonexistent", "gw.yaml"),
    (e: unknown) => e instanceof MyelinError && e.code === "ERR_BAD_CONFIG" && re.test(e.message),
  );
}

test("gateway config: a good file parses; mistakes name the file and the field", () => {
  const cfg = parseGatewayConfig(
    {
      listeners: { tcp: { port: 1883 }, ws: { port: 8083, path: "/mqtt" } },
      sitePrefix: "site-a",
      mapping: [{ myelin: "/t/+", external: "t/+", type: "std_msgs/String", direction: "in" }],
      auth: { allowAnonymous: true, anonymousAcl: { publish: ["t/#"], subscribe: [] } },
      limits: { maxMessageBytes: 4096 },
    },
    "/nonexistent",
  );
  assert.equal(cfg.listeners.tcp?.port, 1883);
  assert.equal(cfg.mapping?.length, 1);
  refused({ listeners: { tcp: { port: 70000 } } }, /^gw\.yaml: listeners\.tcp\.port: must be a port/);
  refused({ listners: {} }, /^gw\.yaml: listners: not a known field/);
  refused(
    { mapping: [{ myelin: "/a/+", external: "a/#", type: "std_msgs/String" }] },
    /^gw\.yaml: mapping\[0\]\.external/,
  );
  refused(
    { mapping: [{ myelin: "/a", external: "a", type: "std_msgs/String", retain: true }] },
    /mapping\[0\]\.retain: not a known field/,
  );
  refused(
    { auth: { users: [{ username: "u", password: "plain" }] } },
    /auth\.users\[0\]\.password: not a password hash/,
  );
  refused(
    { auth: { users: [{ username: "u", acl: { publish: ["a/#/b"] } }] } },
    /auth\.users\[0\]\.acl\.publish/,
  );
  refused({ auth: { certificates: [{ cn: "x", user: "nobody" }] } }, /auth\.certificates\[0\]\.user/);
  refused({ limits: { maxMessageBytes: -1 } }, /limits\.maxMessageBytes: must be an integer/);
  refused(
    { listeners: { tls: { port: 8883, cert: "missing.crt", key: "k" } } },
    /listeners\.tls\.cert: cannot read/,
  );
});
