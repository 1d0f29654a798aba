/**
 * The process credential: a random secret of this process, made when the module loads and kept
 * in memory only. A node sends it to its hub over a local link (ipc, inproc) when it registers;
 * the hub compares it with its own, so a node that presents it runs in the hub's own process —
 * one of the hub's plugins (store, supervisor, gateway…), the only nodes allowed to serve the
 * internal services (`/_store/append`, `/_supervisor/apply`, …). Another process cannot learn it:
 * it never appears in the graph, and is never sent over tcp.
 */
import { processShared } from "../process-shared.js";
import { randomBytes } from "../transport/node-crypto.js";

/**
 * This process's credential (32 random bytes, base64url). One per process
 * (src/process-shared.ts), whichever copy of Myelin made the hub or the node.
 */
export const PROCESS_CREDENTIAL: string = processShared("node.process-credential", () =>
  randomBytes(32).toString("base64url"),
);
