/**
 * The process credential: a random secret of this process, made when the module loads and kept
 * in memory only. A node sends it to its hub over a local link (ipc, inproc) when it registers;
 * the hub compares it with its own, so a node that presents it runs in the hub's own process —
 * one of the hub's plugins (store, supervisor, gateway…), the only nodes allowed to serve the
 * internal services (`/_store/append`, `/_supervisor/apply`, …). Another process cannot learn it:
 * it never appears in the graph, and is never sent over tcp.
 */
import { randomBytes } from "../transport/node-crypto.js";

/** This process's credential (32 random bytes, base64url). */
export const PROCESS_CREDENTIAL = randomBytes(32).toString("base64url");
