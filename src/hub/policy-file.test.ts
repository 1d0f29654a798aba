/**
 * The policy file and its matching: patterns, identity names, admins, internal names, and every
 * kind of bad file refused with an error naming the file, the entry and what is accepted.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AccessPolicy, compilePattern, HUB_IDENTITY } from "../node/access-policy.js";
import { loadPolicyFile, parsePolicy } from "./policy-file.js";

const KEY = "curve:" + "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";

const EXAMPLE = `
identities:
  operators: local
  robot-a: ${KEY}
  guests: anonymous
admins: [operators]
grants:
  - identity: robot-a
    publish: ["/robot_a/**", "/tf"]
    subscribe: ["/cmd/robot_a/*"]
    serve: ["/robot_a/**"]
  - identity: guests
    subscribe: ["/status", "/_twins/updates"]
    call: ["/robot_a/info"]
`;

test("patterns: * is one segment, ** any number (none included), ** alone every name", () => {
  const m = (p: string, n: string): boolean => compilePattern(p).test(n);
  assert.ok(m("/camera/*/image", "/camera/front/image"));
  assert.ok(!m("/camera/*/image", "/camera/front/left/image"));
  assert.ok(m("/robot/**", "/robot"));
  assert.ok(m("/robot/**", "/robot/arm/cmd"));
  assert.ok(!m("/robot/**", "/robots"));
  assert.ok(m("**", "/anything/at/all"));
  assert.ok(m("/a.b", "/a.b") && !m("/a.b", "/axb"));
  for (const bad of ["camera", "/a//b", "/a/***", "/a b", ""]) {
    assert.throws(
      () => compilePattern(bad, "x.yaml: grants[0].publish"),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, "ERR_BAD_CONFIG");
        assert.match(e.message, /x\.yaml: grants\[0\]\.publish: .* is not a name pattern/);
        return true;
      },
    );
  }
});

test("a policy grants what it lists to the identities it names; admins and the hub may do everything", () => {
  const p = new AccessPolicy(parsePolicy(EXAMPLE, "policy.yaml"));
  assert.ok(p.check(KEY, "publish", "/robot_a/odom").allowed);
  assert.ok(p.check(KEY, "publish", "/tf").allowed);
  assert.ok(!p.check(KEY, "publish", "/cmd_vel").allowed);
  assert.ok(p.check(KEY, "subscribe", "/cmd/robot_a/vel").allowed);
  assert.ok(!p.check(KEY, "call", "/robot_a/info").allowed);
  const other = "curve:" + "x".repeat(40);
  assert.ok(!p.check(other, "subscribe", "/status").allowed); // another key: nothing
  assert.ok(p.check("anonymous", "call", "/robot_a/info").allowed);
  assert.ok(p.check("local", "serve", "/anything").allowed && p.isAdmin("local"));
  assert.ok(p.isAdmin(HUB_IDENTITY) && !p.isAdmin("anonymous"));
  // Internal names: admins only, whatever the grants say …
  const d = p.check(KEY, "serve", "/robot_a/set_parameter");
  assert.ok(!d.allowed);
  assert.match(d.reason, /internal services are for admins only/);
  assert.ok(!p.check("anonymous", "call", "/_store/read").allowed);
  // … but an internal topic may be granted for subscribing, by a pattern that names it.
  assert.ok(p.check("anonymous", "subscribe", "/_twins/updates").allowed);
  const wide = new AccessPolicy(parsePolicy(`grants: [{identity: anonymous, subscribe: ["**"]}]`, "w.yaml"));
  assert.ok(wide.check("anonymous", "subscribe", "/status").allowed);
  const r = wide.check("anonymous", "subscribe", "/_twins/updates");
  assert.ok(!r.allowed);
  assert.match(r.reason, /internal topics need a pattern starting with \/_/);
  // A refusal names the identity, the permission, the name and what the identity may do.
  const no = p.check("anonymous", "publish", "/cmd_vel");
  assert.match(
    no.reason,
    /identity 'anonymous' has no 'publish' grant matching \/cmd_vel \(policy\.yaml; its publish patterns: none\)/,
  );
});

test("the default policy: local and CURVE keys are admins, anonymous may use every name but the internal ones", () => {
  const p = AccessPolicy.DEFAULT;
  assert.ok(p.isAdmin("local") && p.isAdmin(KEY));
  assert.ok(p.check("anonymous", "publish", "/cmd_vel").allowed);
  assert.ok(!p.check("anonymous", "call", "/_supervisor/apply").allowed);
  assert.ok(!p.check("anonymous", "call", "/camera/set_parameter").allowed);
});

test("bad policy files are refused with the file, the entry and what is accepted", () => {
  const bad: [string, RegExp][] = [
    ["- a\n- b\n", /p\.yaml: a policy file is a map/],
    ["admin: [local]\n", /p\.yaml: unknown key 'admin'/],
    [
      "identities: {ops: root}\n",
      /p\.yaml: identities\.ops: 'root' is not an identity: use local, anonymous/,
    ],
    ["identities: {ops: 'curve:short'}\n", /curve:<40-character Z85 public key>/],
    ["admins: [operators]\n", /p\.yaml: admins: 'operators' is neither a name under 'identities'/],
    ["grants: {a: 1}\n", /p\.yaml: grants must be a list/],
    ["grants: [{publish: ['/a']}]\n", /p\.yaml: grants\[0\]: name the identity/],
    ["grants: [{identity: local, write: ['/a']}]\n", /p\.yaml: grants\[0\]: unknown key 'write'/],
    [
      "grants: [{identity: local, publish: [1]}]\n",
      /p\.yaml: grants\[0\]\.publish must be a string or a list of strings/,
    ],
    [
      "grants: [{identity: local, publish: ['a/b']}]\n",
      /p\.yaml: grants\[0\]\.publish: 'a\/b' is not a name pattern/,
    ],
    ["admins: [local\n", /p\.yaml: not valid YAML/],
  ];
  for (const [text, re] of bad) {
    assert.throws(
      () => parsePolicy(text, "p.yaml"),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, "ERR_BAD_CONFIG", text);
        assert.match(e.message, re, text);
        return true;
      },
    );
  }
});

test("loadPolicyFile reads a file, and names a missing one", () => {
  const dir = mkdtempSync(join(tmpdir(), "myelin-policy-"));
  try {
    const f = join(dir, "policy.yaml");
    writeFileSync(f, EXAMPLE);
    assert.deepEqual(loadPolicyFile(f).admins, ["local"]);
    assert.throws(
      () => loadPolicyFile(join(dir, "nope.yaml")),
      /cannot read the policy file .*nope\.yaml.*--policy/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
