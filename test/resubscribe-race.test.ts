/**
 * A subscriber asks a publisher again when the publisher's record changes (a grant given back, a
 * topic declared). When that change reaches the subscriber while its ask is still unanswered, the
 * refusal that follows answers the old record: the subscriber must ask once more, or it would wait
 * for a change that already happened (data never flows again after a policy reload brings the grant
 * back). The publisher here is the test itself, a real listener on the host's ipc carrier speaking
 * the data protocol, registered with a real hub: it decides when the refusal leaves.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Hub } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { hostName } from "../src/node/config.js";
import { std_msgs } from "../src/msgs/index.js";
import {
  decodeHubToNode,
  encodeControl,
  type GraphSnapshot,
  type HubToNode,
  type NodeRecord,
} from "../src/node/control-protocol.js";
import { DEFAULT_TRANSPORTS } from "../src/transport/default-transports.js";
import { transportFor, type Incoming } from "../src/transport/transport.js";
import { encodeError, encodePing, FrameKind, parseFrame, type ParsedFrame } from "../src/transport/frame.js";
import { tempRuntime } from "./helpers.js";

/** What the stand-in publisher received, in order, with a way to wait for the next of a kind. */
class Inbox {
  readonly frames: { peer: Buffer; f: ParsedFrame }[] = [];
  #waiters = new Set<() => void>();
  push(m: Incoming): void {
    this.frames.push({ peer: m.peer, f: parseFrame(m.frames) });
    for (const w of [...this.#waiters]) w();
  }
  /** The first frame after index `from` matching `pred`. */
  next(from: number, pred: (f: ParsedFrame) => boolean, what: string, timeoutMs = 10000) {
    return new Promise<{ peer: Buffer; f: ParsedFrame; at: number }>((resolve, reject) => {
      const check = (): void => {
        for (let i = from; i < this.frames.length; i++) {
          if (!pred(this.frames[i]!.f)) continue;
          clearTimeout(timer);
          this.#waiters.delete(check);
          resolve({ ...this.frames[i]!, at: i });
          return;
        }
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(
          new Error(
            `no ${what} within ${timeoutMs} ms; got kinds ${this.frames.map((x) => x.f.kind).join(",")}`,
          ),
        );
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }
}

test("a refusal that answers an ask made before the publisher's record changed is followed by one more ask", async (t) => {
  using rt = tempRuntime();
  await using hub = await Hub.start({ runtimeDir: rt.dir });
  const hubEp = hub.endpoints[0]!;

  // The stand-in publisher's data socket.
  const dataEp = `ipc://${join(rt.dir, "stand-in.sock")}`;
  const listener = await transportFor(DEFAULT_TRANSPORTS, dataEp).listen(dataEp, {
    maxMessageBytes: 1 << 24,
  });
  t.after(() => listener.close(0));
  const inbox = new Inbox();
  void (async () => {
    for await (const m of listener) inbox.push(m);
  })();

  // It registers with the hub like a node of this host publishing /race.
  const control = transportFor(DEFAULT_TRANSPORTS, hubEp).connect(hubEp, { maxMessageBytes: 1 << 24 });
  t.after(() => control.close(0));
  const replies: HubToNode[] = [];
  void (async () => {
    for await (const frames of control) replies.push(decodeHubToNode(frames[0]!));
  })();
  const qos = { reliability: "reliable" as const, durability: "volatile" as const, depth: 10 };
  const record = (pubs: string[]): NodeRecord => ({
    id: "stand-in-1",
    name: "stand_in",
    pid: process.pid,
    host: hostName(),
    process: "stand-in-process",
    endpoint: dataEp,
    startedAt: Date.now(),
    pubs: pubs.map((topic) => ({ topic, type: std_msgs.String.name, qos })),
    subs: [],
    services: [],
  });
  control.send([encodeControl({ v: 1, t: "register", node: record(["/race"]), req: 1, secret: "s" })]);

  const node = await createNode({ name: "race_sub", runtimeDir: rt.dir });
  t.after(() => node.close());
  const refusals: string[] = [];
  const sub = await node.createSubscription("/race", std_msgs.String, () => {});
  sub.on("refused", (err: Error) => refusals.push(err.message));

  // First ask.
  const first = await inbox.next(0, (f) => f.kind === FrameKind.Sub, "first Sub");
  assert.ok(first.f.kind === FrameKind.Sub);
  const sid1 = first.f.body.sid;

  // The record changes while that ask is unanswered, and the subscriber's node has seen it.
  const changed = new Promise<void>((resolve) => {
    const on = (g: GraphSnapshot): void => {
      if (g.nodes.some((n) => n.id === "stand-in-1" && n.pubs.some((p) => p.topic === "/race/other"))) {
        node.off("graph", on);
        resolve();
      }
    };
    node.on("graph", on);
  });
  control.send([
    encodeControl({ v: 1, t: "register", node: record(["/race", "/race/other"]), req: 2, secret: "s" }),
  ]);
  await changed;
  assert.equal(replies.filter((m) => m.t === "registered").length >= 1, true);

  // Now the refusal of the first ask arrives: the subscriber asks once more.
  listener.send(first.peer, [
    encodeError({ sid: sid1, code: "ERR_NOT_AUTHORIZED", message: "not yet granted" }),
  ]);
  const second = await inbox.next(
    first.at + 1,
    (f) => f.kind === FrameKind.Sub,
    "a second Sub after the refusal",
  );
  assert.ok(second.f.kind === FrameKind.Sub);
  assert.notEqual(second.f.body.sid, sid1);
  assert.equal(second.f.body.topic, "/race");
  assert.deepEqual(refusals, ["not yet granted"]);

  // A refusal with no change in between is final until the next change: no third ask. The link
  // echoes a ping after whatever it sent before it, so the echo bounds the wait.
  listener.send(second.peer, [
    encodeError({ sid: second.f.body.sid, code: "ERR_NOT_AUTHORIZED", message: "still not" }),
  ]);
  listener.send(second.peer, [encodePing(4711)]);
  const echo = await inbox.next(
    second.at + 1,
    (f) => f.kind === FrameKind.Ping && f.token === 4711,
    "the ping's echo",
  );
  const asks = inbox.frames.slice(second.at + 1, echo.at).filter((x) => x.f.kind === FrameKind.Sub);
  assert.equal(asks.length, 0, "asked again with no change of the record");
  assert.deepEqual(refusals, ["not yet granted", "still not"]);
});
