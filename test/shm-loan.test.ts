/**
 * Loaned buffers in one process: what is kept beyond the publish call (an in-process queue, the
 * transient-local history) is a copy, so reusing the slot never changes it; a loan is returned
 * by publishing it or by `returnLoan`; bad sizes are refused with the range.
 */
import { strict as assert } from "node:assert";
import { test } from "node:test";
import { createNode, defineMessage, Hub, shmStats, t } from "../src/index.js";
import { tempRuntime } from "./helpers.js";

const Frame = defineMessage("myelin_test/LoanFrame", { seq: t.u32(), data: t.bytes() });
const MiB = 1024 * 1024;
const skip = shmStats().available ? false : `shared memory is off: ${shmStats().detail}`;

function inUse(): number {
  return shmStats().writer?.slotsInUse ?? 0;
}

test(
  "frames kept by an in-process queue and the history are copies: the slots are reused, the frames do not change",
  { skip, timeout: 60000 },
  async () => {
    using rt = tempRuntime();
    await using _hub = await Hub.start({ runtimeDir: rt.dir });
    await using node = await createNode({ name: "loaner", runtimeDir: rt.dir });
    const pub = await node.createPublisher("/loaned", Frame, {
      qos: { durability: "transient-local", depth: 3 },
    });
    const sub = await node.createSubscription("/loaned", Frame, undefined, { queueSize: 200 });
    const before = inUse();
    // More frames than the 1 MiB pool has slots (64): every slot is loaned and reused.
    const n = 100;
    for (let seq = 1; seq <= n; seq++) {
      const b = pub.loan(MiB);
      assert.ok(shmStats().writer!.loans > 0);
      b.fill(seq & 0xff);
      await pub.publish({ seq, data: b });
    }
    assert.equal(inUse(), before, "every loan went back to the pool once published");
    let seen = 0;
    for await (const { msg } of sub) {
      seen++;
      assert.equal(msg.seq, seen);
      assert.ok(
        msg.data.length === MiB && msg.data.every((x) => x === (msg.seq & 0xff)),
        `frame ${msg.seq} changed after its slot was reused`,
      );
      if (seen === n) break;
    }
    // A late subscription gets the history (the last 3): copies, intact.
    const late = await node.createSubscription("/loaned", Frame, undefined, {
      queueSize: 10,
      qos: { durability: "transient-local", depth: 3 },
    });
    const got: number[] = [];
    for await (const { msg } of late) {
      assert.ok(
        msg.data.every((x) => x === (msg.seq & 0xff)),
        `history frame ${msg.seq} changed`,
      );
      got.push(msg.seq);
      if (got.length === 3) break;
    }
    assert.deepEqual(got, [n - 2, n - 1, n]);
  },
);

test(
  "a loan is given back unpublished with returnLoan; bad sizes and a closed publisher are refused",
  { skip, timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    await using _hub = await Hub.start({ runtimeDir: rt.dir });
    await using node = await createNode({ name: "loaner2", runtimeDir: rt.dir });
    const pub = await node.createPublisher("/loaned2", Frame);
    const before = inUse();
    const b = pub.loan(8 * MiB);
    assert.equal(inUse(), before + 1);
    pub.returnLoan(b);
    assert.equal(inUse(), before);
    pub.returnLoan(b); // twice: ignored
    pub.returnLoan(Buffer.alloc(10)); // not a loan: ignored
    assert.equal(inUse(), before);
    const small = pub.loan(100);
    assert.equal(small.length, 100, "below the threshold: a heap buffer");
    assert.equal(inUse(), before);
    for (const bad of [0, -1, 1.5, Number.NaN, 64 * MiB + 1]) {
      assert.throws(
        () => pub.loan(bad),
        (e: Error & { code?: string }) =>
          e.code === "ERR_INVALID_ARGUMENT" && /integer from 1 to maxMessageBytes/.test(e.message),
      );
    }
    pub.close();
    assert.throws(
      () => pub.loan(MiB),
      (e: Error & { code?: string }) => e.code === "ERR_CLOSED",
    );
  },
);
