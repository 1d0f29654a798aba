/**
 * The demo system: a hub, and three nodes in their own processes — a simulated camera, a
 * detector and a monitor — talking over ZeroMQ on this host. No external service needed.
 *
 *   npm run demo                      # runs until Ctrl-C
 *   npm run demo -- --duration-ms 5000
 *   npm run demo -- --foxglove-port 8765   # also serve Foxglove / Lichtblick (it prints the URL)
 * While it runs, try the CLI in another terminal: `npx myelin node list`, `npx myelin topic hz
 * /detections`, `npx myelin service call /detector/stats std_srvs/Trigger '{}'`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { foxglovePlugin } from "../src/foxglove/index.js";
import { hubInfoPlugin, startHubProcess, type HubPlugin, type HubProcess } from "../src/hub/index.js";
import { version } from "../src/tools/common.js";

const { values } = parseArgs({
  options: { "duration-ms": { type: "string" }, "foxglove-port": { type: "string" } },
});
const durationMs = values["duration-ms"] === undefined ? 0 : Number(values["duration-ms"]);
const plugins: HubPlugin[] = [hubInfoPlugin({ version: version() })];
if (values["foxglove-port"] !== undefined)
  plugins.push(foxglovePlugin({ port: Number(values["foxglove-port"]) }));

let hub: HubProcess | undefined;
try {
  // The hub, with what `myelin doctor` asks a hub about itself (this demo's hub keeps no durable topics).
  hub = await startHubProcess({
    log: (line) => console.log(`[hub] ${line}`),
    plugins,
  });
  console.log(`[demo] hub listening on ${hub.hub.endpoints.join(", ")}`);
} catch (err) {
  console.log(`[demo] using the hub that already runs (${(err as Error).message.split(";")[0]})`);
}

const children: ChildProcess[] = [];
for (const name of ["camera", "detector", "monitor"]) {
  const script = fileURLToPath(new URL(`./${name}.js`, import.meta.url));
  // An IPC channel ties each node to the demo: if the demo dies (even kill -9), it closes and the
  // node stops instead of running on by itself.
  const child = spawn(process.execPath, [script], { stdio: ["ignore", "pipe", "inherit", "ipc"] });
  child.stdout!.on("data", (b: Buffer) => {
    for (const line of b.toString().split("\n")) if (line.trim() !== "") console.log(`[${name}] ${line}`);
  });
  children.push(child);
}

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log("[demo] stopping");
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null) return resolve();
          c.once("exit", () => resolve());
          c.kill("SIGTERM");
        }),
    ),
  );
  await hub?.close();
  process.exit(0);
}
process.on("SIGINT", () => void stop());
process.on("SIGTERM", () => void stop());
if (durationMs > 0) setTimeout(() => void stop(), durationMs);
