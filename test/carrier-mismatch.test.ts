/**
 * Every process of a host must carry `ipc://` the same way (ZeroMQ or the Unix carrier). A
 * mismatch is told, not silent: each carrier recognises the other's greeting and its connection
 * goes down with a reason that names `MYELIN_IPC_TRANSPORT`, and a node whose hub uses the other
 * carrier fails to start with ERR_CARRIER_MISMATCH.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hub } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { MyelinError } from "../src/errors.js";
import { isCarrierMismatch, type Connection, type Transport } from "../src/transport/transport.js";
import { unixTransport } from "../src/transport/unix/unix-transport.js";
import { zmqTransport } from "../src/transport/zmq/zmq-transport.js";
import { GREETING } from "../src/transport/unix/unix-framing.js";
import { createServer } from "node:net";

const OPTS = { maxMessageBytes: 1024 * 1024 };

/** Resolves with the first `down` reason of `conn`, or rejects after `ms`. */
function firstDown(conn: Connection, ms = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no 'down' within ${ms} ms`)), ms);
    conn.on("down", (why) => {
      clearTimeout(timer);
      resolve(why);
    });
  });
}

async function mismatch(listener: Transport, connector: Transport, expect: RegExp): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "myelin-carrier-"));
  const l = await listener.listen(`ipc://${join(dir, "l.sock")}`, OPTS);
  const conn = connector.connect(l.endpoint, OPTS);
  try {
    const why = await firstDown(conn);
    assert.ok(isCarrierMismatch(why), `a carrier mismatch, got: ${why}`);
    assert.match(why, expect);
    assert.match(why, /MYELIN_IPC_TRANSPORT/);
  } finally {
    await conn.close(0);
    await l.close(0);
    rmSync(dir, { recursive: true, force: true });
  }
}

test("a Unix-carrier connection to a ZeroMQ listener goes down saying the carriers differ", async () => {
  await mismatch(zmqTransport, unixTransport, /served by ZeroMQ/);
});

test("a ZeroMQ connection to a Unix-carrier listener goes down saying the carriers differ", async () => {
  await mismatch(unixTransport, zmqTransport, /probably served by the Unix carrier/);
});

test("a Unix-carrier connection sends nothing past its greeting until the listener greets back", async () => {
  // A ZeroMQ listener sends its signature and waits for the 77-byte "identity" our first byte
  // announces; had messages followed the greeting at once, libzmq would have read them as that
  // identity (and can abort its process there). A raw listener stands in for it and records.
  const dir = mkdtempSync(join(tmpdir(), "myelin-carrier-raw-"));
  const path = join(dir, "l.sock");
  const got: Buffer[] = [];
  const server = createServer((sock) => {
    sock.on("data", (d) => got.push(d));
    sock.on("error", () => undefined);
    sock.write(Buffer.from([0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f])); // a ZMTP signature
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const conn = unixTransport.connect(`ipc://${path}`, OPTS);
  try {
    conn.send([Buffer.alloc(300, 1)]); // queued before the connection is up
    const why = await firstDown(conn);
    assert.ok(isCarrierMismatch(why), why);
    assert.deepEqual(Buffer.concat(got), GREETING, "the greeting alone reached the listener");
  } finally {
    await conn.close(0);
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a node whose hub uses the other ipc:// carrier fails to start with ERR_CARRIER_MISMATCH", async () => {
  const dir = mkdtempSync(join(tmpdir(), "myelin-carrier-node-"));
  const hub = await Hub.start({ runtimeDir: dir, transports: { ipc: zmqTransport, tcp: zmqTransport } });
  try {
    const started = Date.now();
    await assert.rejects(
      createNode({
        name: "odd_one_out",
        runtimeDir: dir,
        registerTimeoutMs: 1000,
        transports: { ipc: unixTransport, tcp: zmqTransport },
      }),
      (err: unknown) => {
        assert.ok(err instanceof MyelinError);
        assert.equal(err.code, "ERR_CARRIER_MISMATCH");
        assert.match(err.message, /MYELIN_IPC_TRANSPORT/);
        return true;
      },
    );
    assert.ok(Date.now() - started < 5000, "it fails within the registration wait");
  } finally {
    hub.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
