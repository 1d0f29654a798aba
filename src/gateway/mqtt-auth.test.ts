/**
 * Topic matching of the MQTT gateway: the in-place `topicMatches` (run for every delivery) against
 * the plain definition that splits both strings into levels.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { topicMatches, unshare } from "./mqtt-auth.js";

/** MQTT 3.1.1 (4.7) topic matching, level by level, as written in the specification. */
function byLevels(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  if (topic.startsWith("$") && (f[0] === "+" || f[0] === "#")) return false;
  for (let i = 0; i < f.length; i++) {
    const fl = f[i]!;
    if (fl === "#") return true;
    const tl = t[i];
    if (tl === undefined) return false;
    if (fl !== "+" && fl !== tl) return false;
  }
  return f.length === t.length;
}

test("topicMatches: the MQTT examples", () => {
  const cases: [string, string, boolean][] = [
    ["sport/tennis/player1/#", "sport/tennis/player1", true],
    ["sport/tennis/player1/#", "sport/tennis/player1/ranking", true],
    ["sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true],
    ["sport/#", "sport", true],
    ["#", "sport/tennis", true],
    ["#", "$SYS/broker", false],
    ["+/monitor/Clients", "$SYS/monitor/Clients", false],
    ["$SYS/#", "$SYS/monitor/Clients", true],
    ["$SYS/monitor/+", "$SYS/monitor/Clients", true],
    ["sport/tennis/+", "sport/tennis/player1", true],
    ["sport/tennis/+", "sport/tennis/player1/ranking", false],
    ["sport/+", "sport", false],
    ["sport/+", "sport/", true],
    ["+/+", "/finance", true],
    ["/+", "/finance", true],
    ["+", "/finance", false],
    ["a/b", "a/bc", false],
    ["a/bc", "a/b", false],
    ["a//b", "a//b", true],
    ["", "", true],
    ["+", "", true],
  ];
  for (const [f, t, want] of cases) {
    assert.equal(topicMatches(f, t), want, `${f} ~ ${t}`);
    assert.equal(byLevels(f, t), want, `reference: ${f} ~ ${t}`);
  }
});

test("topicMatches agrees with matching level by level", () => {
  // Few distinct characters, so that levels often coincide and every branch is taken.
  const level = fc.constantFrom("", "a", "b", "ab", "$a", "+", "#", "$SYS");
  const name = fc.array(level, { minLength: 1, maxLength: 5 }).map((ls) => ls.join("/"));
  fc.assert(
    fc.property(name, name, (filter, topic) => topicMatches(filter, topic) === byLevels(filter, topic)),
    { numRuns: 20000, seed: 15 },
  );
});

test("unshare: a shared subscription's group and filter", () => {
  assert.deepEqual(unshare("$share/g/a/+"), { group: "g", filter: "a/+" });
  assert.deepEqual(unshare("a/+"), { group: undefined, filter: "a/+" });
  assert.deepEqual(unshare("$share//a"), { group: undefined, filter: "$share//a" });
});
