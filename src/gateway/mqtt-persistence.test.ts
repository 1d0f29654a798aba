import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { FilePersistence, type StoredPacket } from "./mqtt-persistence.js";

function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = mkdtempSync(join(tmpdir(), "myelin-mqtt-sessions-"));
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A client as aedes passes it to the persistence: its id and the next packet id it gives. */
interface Conn {
  id: string;
  _nextId: number;
}

/** A queued publish as the tests build it: the stored shape with the broker's fields set. */
type Queued = StoredPacket & { brokerId: string; brokerCounter: number };

function publish(brokerId: string, brokerCounter: number, text: string): Queued {
  return {
    cmd: "publish",
    brokerId,
    brokerCounter,
    topic: "jobs/x",
    payload: Buffer.from(text),
    qos: 2,
    retain: false,
    dup: false,
  };
}

async function drain(s: Readable): Promise<Queued[]> {
  const out: Queued[] = [];
  for await (const x of s) out.push(x as Queued);
  return out;
}

/** What aedes does to send a queued message: keep its packet id or take the connection's next one. */
async function send(p: FilePersistence, conn: Conn, packet: Queued): Promise<number> {
  const sent = { ...packet };
  if (sent.messageId === undefined) {
    sent.messageId = conn._nextId;
    conn._nextId = conn._nextId >= 65535 ? 1 : conn._nextId + 1;
  }
  await p.outgoingUpdate(conn, sent);
  return sent.messageId;
}

test("MQTT sessions: a resumed session's messages never share a packet id with one still in flight", async () => {
  using t = tempDir();
  const p = new FilePersistence({ dir: t.dir });
  await p.setup({});
  try {
    await p.addSubscriptions({ id: "dev" }, [{ topic: "jobs/#", qos: 2 }]);
    const sub = [{ clientId: "dev", qos: 2 }];
    await p.outgoingEnqueueCombi(sub, publish("b1", 1, "a"));
    await p.outgoingEnqueueCombi(sub, publish("b1", 2, "b"));

    // First connection: "a" is sent with id 7; the connection is lost before its PUBREC.
    const first: Conn = { id: "dev", _nextId: 7 };
    const [a] = await drain(p.outgoingStream(first));
    assert.equal(await send(p, first, a!), 7);

    // The session resumes on a new connection whose ids start at 7 too (aedes starts each
    // connection at a random id): "a" is sent again with 7, "b" must not get 7 as well.
    const second: Conn = { id: "dev", _nextId: 7 };
    const ids = new Map<string, number>();
    for (const q of await drain(p.outgoingStream(second)))
      ids.set(q.payload.toString(), await send(p, second, q));
    assert.equal(ids.get("a"), 7);
    assert.equal(ids.get("b"), 8, "the next unused id, not the one 'a' is in flight with");
    assert.equal(second._nextId, 9);

    // A message of a restarted broker (another broker id) numbered into an id in use does not
    // take the place of the message that holds it.
    await p.outgoingEnqueueCombi(sub, publish("b2", 1, "c"));
    second._nextId = 7;
    const [c] = (await drain(p.outgoingStream(second))).filter((q) => q.messageId === undefined);
    ids.set("c", await send(p, second, c!));
    assert.equal(ids.get("c"), 9);
    const queue = await drain(p.outgoingStream(second));
    assert.deepEqual(
      queue.map((q) => [q.payload.toString(), q.messageId]),
      [
        ["a", 7],
        ["b", 8],
        ["c", 9],
      ],
    );

    // Each acknowledgement clears its own message.
    for (const id of [8, 7, 9]) {
      await p.outgoingClearMessageId(second, { messageId: id });
      assert.ok(!(await drain(p.outgoingStream(second))).some((q) => q.messageId === id));
    }
    assert.equal((await drain(p.outgoingStream(second))).length, 0);
  } finally {
    await p.destroy();
  }
});
