/** The Transport conformance suite, once per transport and scheme: a new transport adds one line. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { generateCurveKeyPair } from "../src/transport/curve-key.js";
import { MemoryTransport } from "../src/transport/memory-transport.js";
import type { Transport } from "../src/transport/transport.js";
import { unixTransport } from "../src/transport/unix/unix-transport.js";
import { zmqTransport } from "../src/transport/zmq/zmq-transport.js";
import { echoProcess, rawGarbage, transportConformance } from "./transport-conformance.js";

const dir = mkdtempSync(join(tmpdir(), "myelin-transport-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

transportConformance({
  name: "memory inproc",
  transport: new MemoryTransport(),
  endpoint: () => `inproc://t${++n}`,
});
transportConformance({
  name: "zeromq ipc",
  transport: zmqTransport,
  endpoint: () => `ipc://${join(dir, `t${++n}.sock`)}`,
  garbage: rawGarbage,
  echoProcess: (ep) => echoProcess("zmq/zmq-transport.js", "zmqTransport", ep),
});
transportConformance({
  name: "zeromq tcp",
  transport: zmqTransport,
  endpoint: () => "tcp://127.0.0.1:0",
  garbage: rawGarbage,
  echoProcess: (ep) => echoProcess("zmq/zmq-transport.js", "zmqTransport", ep),
});
/** ZeroMQ with CURVE on every listener and connection: one server key, one trusted client key. */
function curveZmq(): Transport {
  const server = generateCurveKeyPair();
  const client = generateCurveKeyPair();
  return {
    name: "zeromq+curve",
    listen: (ep, opts) =>
      zmqTransport.listen(ep, {
        ...opts,
        security: { mode: "curve", ...server, trusted: (k) => k === client.publicKey },
      }),
    connect: (ep, opts) =>
      zmqTransport.connect(ep, {
        ...opts,
        security: { mode: "curve", ...client, serverKey: server.publicKey },
      }),
  };
}
transportConformance({
  name: "zeromq tcp+CURVE",
  transport: curveZmq(),
  endpoint: () => "tcp://127.0.0.1:0",
  garbage: rawGarbage,
});
transportConformance({
  name: "unix ipc",
  transport: unixTransport,
  endpoint: () => `ipc://${join(dir, `u${++n}.sock`)}`,
  garbage: rawGarbage,
  echoProcess: (ep) => echoProcess("unix/unix-transport.js", "unixTransport", ep),
});
