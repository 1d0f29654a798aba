/**
 * The Unix carrier's enlarged kernel send buffer, on a real Unix socket: the kernel grants it (as
 * far as `net.core.wmem_max` allows), and a sender that writes 2 MiB in one go, with nobody
 * reading, gets all of it into the kernel at once instead of into Node's write queue.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createConnection, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nativeAddon } from "../shm/shm-addon.js";
import { SEND_BUFFER_BYTES, enlargeSendBuffer } from "./send-buffer.js";

/** A connected pair of Unix sockets (client, accepted) in a fresh directory; `close` removes all. */
async function socketPair(): Promise<{ client: Socket; accepted: Socket; close: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), "myelin-sndbuf-"));
  const server = createServer();
  const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
  await new Promise<void>((resolve) => server.listen(join(dir, "s.sock"), resolve));
  const client = createConnection({ path: join(dir, "s.sock") });
  await new Promise<void>((resolve, reject) => {
    client.once("connect", resolve);
    client.once("error", reject);
  });
  const peer = await accepted;
  peer.pause(); // nobody reads
  return {
    client,
    accepted: peer,
    close: () => {
      client.destroy();
      peer.destroy();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `net.core.<name>` of this host, or 0 when it cannot be read. */
function netCore(name: "wmem_max" | "wmem_default"): number {
  try {
    return Number(readFileSync(`/proc/sys/net/core/${name}`, "utf8").trim());
  } catch {
    return 0;
  }
}

test("the kernel grants the send buffer asked for, within net.core.wmem_max", async () => {
  const { client, close } = await socketPair();
  try {
    const got = enlargeSendBuffer(client);
    if (nativeAddon()?.socketBuffers === undefined) {
      assert.equal(got, 0, "without the addon the socket keeps the host's default");
      return;
    }
    // Linux doubles the request for its bookkeeping, capped at twice wmem_max.
    const max = netCore("wmem_max");
    const expected = 2 * (max > 0 ? Math.min(SEND_BUFFER_BYTES, max) : SEND_BUFFER_BYTES);
    assert.equal(got, expected);
  } finally {
    close();
  }
});

test("2 MiB written at once, nobody reading, all lands in the kernel", async (t) => {
  if (nativeAddon()?.socketBuffers === undefined) return t.skip("the native addon is not built");
  if (netCore("wmem_max") < 2 * 1024 * 1024) return t.skip("net.core.wmem_max is below 2 MiB on this host");
  const { client, close } = await socketPair();
  try {
    assert.ok(enlargeSendBuffer(client) > 0);
    const ok = client.write(Buffer.alloc(2 * 1024 * 1024, 7));
    assert.equal(ok, true, "the write did not fill the socket's buffers");
    assert.equal(client.writableLength, 0, "nothing waits in Node's write queue");
  } finally {
    close();
  }
});

test("with the host's default buffer, the same write waits in Node's queue (the case the larger buffer fixes)", async (t) => {
  const def = netCore("wmem_default");
  if (def === 0 || def >= 1024 * 1024) return t.skip("this host's default send buffer is not the small one");
  const { client, close } = await socketPair();
  try {
    client.write(Buffer.alloc(2 * 1024 * 1024, 7));
    assert.ok(client.writableLength > 0, "a default Unix socket buffer holds less than 2 MiB");
  } finally {
    close();
  }
});
