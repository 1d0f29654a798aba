/**
 * CURVE on the ZeroMQ transport, over real tcp sockets: a trusted client gets through and is named
 * by its key; an untrusted key, a plain-text client and a client claiming another key are refused,
 * counted and reported with the peer's address; bad keys are clear errors.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Dealer } from "zeromq";
import { generateCurveKeyPair, type CurveKeyPair } from "../curve-key.js";
import { curvePeerId } from "../curve-peer-id.js";
import type { CurveRefusal, Frames, Listener, TransportOptions } from "../transport.js";
import { MemoryTransport } from "../memory-transport.js";
import { unixTransport } from "../unix/unix-transport.js";
import { zmqTransport, type ZmqListener } from "./zmq-transport.js";

const server = generateCurveKeyPair();
const alice = generateCurveKeyPair();
const bob = generateCurveKeyPair();
const mallory = generateCurveKeyPair();

/** Resolves with the next value `arm` hands to its callback, or rejects after `ms`. */
function next<T>(arm: (fn: (v: T) => void) => void, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    arm((v) => {
      clearTimeout(t);
      resolve(v);
    });
  });
}

async function curveListener(
  trusted: readonly CurveKeyPair[],
  refusals: CurveRefusal[],
  onRefused?: () => void,
) {
  const keys = new Set(trusted.map((k) => k.publicKey));
  const opts: TransportOptions = {
    maxMessageBytes: 1 << 20,
    security: {
      mode: "curve",
      ...server,
      trusted: (k) => keys.has(k),
      onRefused: (r) => {
        refusals.push(r);
        onRefused?.();
      },
    },
  };
  return (await zmqTransport.listen("tcp://127.0.0.1:0", opts)) as ZmqListener;
}

function connectAs(l: Listener, keys: CurveKeyPair) {
  return zmqTransport.connect(l.endpoint, {
    maxMessageBytes: 1 << 20,
    security: { mode: "curve", ...keys, serverKey: server.publicKey },
  });
}

/** Collects what the listener receives. */
function collect(l: Listener): {
  got: { identity: string; text: string; peer: Buffer }[];
  waiters: (() => void)[];
} {
  const state = {
    got: [] as { identity: string; text: string; peer: Buffer }[],
    waiters: [] as (() => void)[],
  };
  void (async () => {
    for await (const m of l) {
      state.got.push({ identity: m.identity, text: m.frames[0]!.toString(), peer: m.peer });
      l.send(m.peer, [Buffer.from(`re:${m.frames[0]!.toString()}`)]);
      for (const w of state.waiters.splice(0)) w();
    }
  })();
  return state;
}

async function received(state: ReturnType<typeof collect>, pred: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await next<void>((fn) => state.waiters.push(fn), deadline - Date.now(), what);
  }
}

test("a trusted client is admitted, named curve:<its key>, and gets the reply", async () => {
  const refusals: CurveRefusal[] = [];
  const l = await curveListener([alice, bob], refusals);
  const state = collect(l);
  const a = connectAs(l, alice);
  const b = connectAs(l, bob);
  try {
    a.send([Buffer.from("from-alice")]);
    b.send([Buffer.from("from-bob")]);
    await received(state, () => state.got.length === 2, "two messages");
    const byText = new Map(state.got.map((g) => [g.text, g.identity]));
    assert.equal(byText.get("from-alice"), `curve:${alice.publicKey}`);
    assert.equal(byText.get("from-bob"), `curve:${bob.publicKey}`);
    const it = a[Symbol.asyncIterator]();
    const reply = (await it.next()).value as Frames;
    assert.equal(reply[0]!.toString(), "re:from-alice");
    assert.equal(l.refused, 0);
    assert.deepEqual(refusals, []);
  } finally {
    await a.close(0);
    await b.close(0);
    await l.close(0);
  }
});

test("an untrusted key is refused at the handshake, counted and reported with its address; nothing it sends arrives", async () => {
  const refusals: CurveRefusal[] = [];
  let notify: () => void = () => {};
  const l = await curveListener([alice], refusals, () => notify());
  const state = collect(l);
  const m = connectAs(l, mallory);
  const downs: string[] = [];
  m.on("down", (why) => downs.push(why));
  try {
    const refused = next<void>((fn) => (notify = fn), 10_000, "the refusal");
    m.send([Buffer.from("from-mallory")]);
    await refused;
    assert.ok(l.refused >= 1);
    assert.equal(refusals[0]!.address, "127.0.0.1");
    assert.equal(refusals[0]!.publicKey, mallory.publicKey);
    assert.match(refusals[0]!.reason, /not trusted/);
    // A trusted client through the same listener afterwards: its message arrives, mallory's never did.
    const a = connectAs(l, alice);
    a.send([Buffer.from("from-alice")]);
    await received(state, () => state.got.length >= 1, "alice's message");
    assert.deepEqual(
      state.got.map((g) => g.text),
      ["from-alice"],
    );
    await a.close(0);
    assert.equal(m.up, false);
  } finally {
    await m.close(0);
    await l.close(0);
  }
});

test("a trusted client cannot claim another key: a routing id naming alice's key without her proof is dropped and counted", async () => {
  const refusals: CurveRefusal[] = [];
  let notify: () => void = () => {};
  const l = await curveListener([alice, bob], refusals, () => notify());
  const state = collect(l);
  // Bob handshakes with his own (trusted) key but names himself with alice's key: a routing id
  // made for alice by someone without her secret key (bob's proof under alice's name).
  const forged = alice.publicKey + curvePeerId(bob, server.publicKey).slice(alice.publicKey.length);
  const raw = new Dealer({
    linger: 0,
    curveServerKey: server.publicKey,
    curvePublicKey: bob.publicKey,
    curveSecretKey: bob.secretKey,
    routingId: forged,
  });
  // Bob's own, well-formed id with alice's key replaced: the same forgery through the other end.
  const raw2 = new Dealer({
    linger: 0,
    curveServerKey: server.publicKey,
    curvePublicKey: bob.publicKey,
    curveSecretKey: bob.secretKey,
    routingId: alice.publicKey + "x".repeat(59),
  });
  try {
    const refused = next<void>((fn) => (notify = fn), 10_000, "the refusal of the forged id");
    raw.connect(l.endpoint);
    await raw.send("forged-1");
    await refused;
    const refused2 = next<void>((fn) => (notify = fn), 10_000, "the refusal of the second forged id");
    raw2.connect(l.endpoint);
    await raw2.send("forged-2");
    await refused2;
    assert.equal(l.refused, 2);
    assert.match(refusals[0]!.reason, /proves no key/);
    // The real alice still gets through, named by her key; no forged message was delivered.
    const a = connectAs(l, alice);
    a.send([Buffer.from("real-alice")]);
    await received(state, () => state.got.length >= 1, "alice's message");
    assert.deepEqual(
      state.got.map((g) => ({ identity: g.identity, text: g.text })),
      [{ identity: `curve:${alice.publicKey}`, text: "real-alice" }],
    );
    await a.close(0);
  } finally {
    raw.close();
    raw2.close();
    await l.close(0);
  }
});

test("a plain-text client and a client with a wrong listener key are refused and counted", async () => {
  const refusals: CurveRefusal[] = [];
  let notify: () => void = () => {};
  const l = await curveListener([alice], refusals, () => notify());
  const state = collect(l);
  const plain = zmqTransport.connect(l.endpoint, { maxMessageBytes: 1 << 20 });
  const wrong = zmqTransport.connect(l.endpoint, {
    maxMessageBytes: 1 << 20,
    security: { mode: "curve", ...alice, serverKey: mallory.publicKey },
  });
  try {
    const r1 = next<void>((fn) => (notify = fn), 10_000, "the refusal of the plain client");
    plain.send([Buffer.from("plain")]);
    await r1;
    const before = l.refused;
    const r2 = next<void>((fn) => (notify = fn), 10_000, "the refusal of the wrong listener key");
    wrong.send([Buffer.from("wrong-key")]);
    await r2;
    assert.ok(l.refused > before);
    assert.ok(refusals.every((r) => /handshake failed/.test(r.reason)));
    assert.deepEqual(state.got, []);
  } finally {
    await plain.close(0);
    await wrong.close(0);
    await l.close(0);
  }
});

test("an untrusted client learns why: its connection goes down naming its key and the fix", async () => {
  const l = await curveListener([alice], []);
  const m = connectAs(l, mallory);
  try {
    const why = next<string>((fn) => m.on("down", fn), 10_000, "the client's down event");
    m.send([Buffer.from("x")]);
    assert.match(await why, new RegExp(`refused this host's CURVE key .*myelin keys trust NAME`));
  } finally {
    await m.close(0);
    await l.close(0);
  }
});

test("a client refused for its key gets in once the key is trusted, without restarting", async () => {
  let trusted = false;
  let notify: () => void = () => {};
  const l = (await zmqTransport.listen("tcp://127.0.0.1:0", {
    maxMessageBytes: 1 << 20,
    security: {
      mode: "curve",
      ...server,
      trusted: (k) => trusted && k === mallory.publicKey,
      onRefused: () => notify(),
    },
  })) as ZmqListener;
  const state = collect(l);
  const m = connectAs(l, mallory);
  try {
    const refused = next<void>((fn) => (notify = fn), 10_000, "the first refusal");
    m.send([Buffer.from("too-early")]);
    await refused;
    trusted = true;
    // The client tries again by itself; once admitted, what it sends arrives, named by its key.
    // What was queued on a refused attempt is lost with it (the layers above resend on `up`), and
    // the `up` of the refused attempt itself may be reported late: send again on every `up`.
    m.on("up", () => void m.send([Buffer.from("admitted")]));
    m.send([Buffer.from("admitted")]);
    await received(state, () => state.got.some((g) => g.text === "admitted"), "the admitted message");
    assert.ok(state.got.every((g) => g.identity === `curve:${mallory.publicKey}`));
  } finally {
    await m.close(0);
    await l.close(0);
  }
});

test("bad CURVE options are clear errors; carriers without CURVE refuse it", async () => {
  const base = { maxMessageBytes: 1024 };
  await assert.rejects(
    zmqTransport.listen("tcp://127.0.0.1:0", { ...base, security: { mode: "curve", ...server } }),
    /needs a trust check of client keys/,
  );
  await assert.rejects(
    zmqTransport.listen("tcp://127.0.0.1:0", {
      ...base,
      security: { mode: "curve", publicKey: "short", secretKey: server.secretKey, trusted: () => true },
    }),
    /40 characters of Z85/,
  );
  await assert.rejects(
    zmqTransport.listen("tcp://127.0.0.1:0", {
      ...base,
      security: {
        mode: "curve",
        publicKey: alice.publicKey,
        secretKey: server.secretKey,
        trusted: () => true,
      },
    }),
    /does not belong to the secret key/,
  );
  assert.throws(
    () => zmqTransport.connect("tcp://127.0.0.1:1", { ...base, security: { mode: "curve", ...alice } }),
    /needs the listener's public key/,
  );
  assert.throws(
    () =>
      zmqTransport.connect("tcp://127.0.0.1:1", {
        ...base,
        security: { mode: "curve", ...alice, serverKey: "~".repeat(40) },
      }),
    /not a CURVE key/,
  );
  const curve = { mode: "curve" as const, ...server, trusted: () => true };
  await assert.rejects(
    unixTransport.listen("ipc:///tmp/never.sock", { ...base, security: curve }),
    /not supported by the unix transport; use 'none', or ZeroMQ over tcp:\/\/ for CURVE/,
  );
  await assert.rejects(
    new MemoryTransport().listen("inproc://x", { ...base, security: curve }),
    /not supported by the/,
  );
});

test("a key revoked while connected: its messages are dropped both ways from then on, counted; trusted again, the same connection is admitted", async () => {
  const refusals: CurveRefusal[] = [];
  const keys = new Set([alice.publicKey, bob.publicKey]);
  let changed: () => void = () => {};
  let watching = 0;
  const l = (await zmqTransport.listen("tcp://127.0.0.1:0", {
    maxMessageBytes: 1 << 20,
    security: {
      mode: "curve",
      ...server,
      trusted: (k) => keys.has(k),
      onRefused: (r) => refusals.push(r),
      watchTrust: (fn) => {
        changed = fn;
        watching++;
        return () => void watching--;
      },
    },
  })) as ZmqListener;
  assert.equal(watching, 1);
  const state = collect(l);
  const a = connectAs(l, alice);
  const b = connectAs(l, bob);
  try {
    a.send([Buffer.from("a1")]);
    await received(state, () => state.got.some((g) => g.text === "a1"), "alice's first message");
    // Revoke alice: told once, her next messages are dropped, bob is untouched.
    keys.delete(alice.publicKey);
    changed();
    assert.equal(refusals.length, 1);
    assert.equal(refusals[0]!.publicKey, alice.publicKey);
    assert.match(refusals[0]!.reason, /key revoked/);
    a.send([Buffer.from("a2")]);
    b.send([Buffer.from("b1")]);
    await received(state, () => state.got.some((g) => g.text === "b1"), "bob's message");
    // Alice's connection is older than bob's and ZeroMQ keeps one peer's messages in order: a2 was
    // read (and dropped) before or after b1; wait until the listener counted it.
    const deadline = Date.now() + 10_000;
    while (l.droppedRevoked < 1 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    assert.ok(l.droppedRevoked >= 1, "a2 dropped and counted");
    assert.ok(!state.got.some((g) => g.text === "a2"));
    // What is sent to her is dropped too, and counted.
    const dropped = l.droppedRevoked;
    l.send(state.got.find((g) => g.text === "a1")!.peer, [Buffer.from("to-alice")]);
    assert.equal(l.droppedRevoked, dropped + 1);
    assert.equal(l.queued, 0);
    // Trusted again: the same connection is admitted.
    keys.add(alice.publicKey);
    changed();
    a.send([Buffer.from("a3")]);
    await received(state, () => state.got.some((g) => g.text === "a3"), "alice's message after re-trust");
    assert.equal(state.got.find((g) => g.text === "a3")!.identity, `curve:${alice.publicKey}`);
    assert.equal(refusals.length, 1);
  } finally {
    await a.close(0);
    await b.close(0);
    await l.close(0);
  }
  assert.equal(watching, 0, "the listener stops watching when closed");
});
