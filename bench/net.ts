/** Small network helpers of the benchmarks: a free TCP port, and waiting for a server to listen. */
import { once } from "node:events";
import net from "node:net";

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const addr = srv.address();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  if (addr === null || typeof addr === "string") throw new Error("could not get a free port");
  return addr.port;
}

/**
 * Resolves once something accepts connections on 127.0.0.1:`port`.
 * @param what names the server in the timeout error, e.g. "nats-server"
 * @param exited says why the server cannot come up (it exited), or undefined while it may
 */
export async function waitForPort(
  port: number,
  timeoutMs: number,
  what: string,
  exited: () => string | undefined = () => undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const why = exited();
    if (why !== undefined) throw new Error(why);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1");
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
