/**
 * A monitor node: subscribes to the camera and the detections and prints, every second, what
 * arrives: rates, sizes, end-to-end latency and the last detection.
 *
 *   node dist/examples/monitor.js           # needs a hub
 */
import { createNode, sensor_msgs, timeToMillis, vision_msgs, type Node } from "myelin";
import { stopWith } from "./lifecycle.js";

/** Starts the monitor on `node`; `print` gets one line per second. Resolves to a stop function. */
export async function runMonitor(node: Node, print: (line: string) => void): Promise<() => void> {
  let frames = 0;
  let bytes = 0;
  let dets = 0;
  let latencySum = 0;
  let last = "none yet";
  await node.createSubscription(
    "/camera/front/image",
    sensor_msgs.Image,
    (img) => {
      frames++;
      bytes += img.data.length;
    },
    { qos: { reliability: "best-effort", depth: 5 } },
  );
  await node.createSubscription("/detections", vision_msgs.Detection2DArray, (msg) => {
    dets++;
    latencySum += Date.now() - timeToMillis(msg.header.stamp);
    const d = msg.detections[0];
    if (d !== undefined) {
      const c = d.bbox.center.position;
      last = `${d.results[0]?.hypothesis.class_id ?? "?"} ${d.id} at (${c.x.toFixed(0)}, ${c.y.toFixed(0)}) ${d.bbox.size_x}x${d.bbox.size_y}`;
    }
  });
  let prev = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    const s = (now - prev) / 1000;
    prev = now;
    print(
      `camera ${(frames / s).toFixed(1)} Hz ${(bytes / s / 1e6).toFixed(2)} MB/s | detections ${(dets / s).toFixed(1)} Hz, ` +
        `latency ${dets ? (latencySum / dets).toFixed(1) : "-"} ms | last: ${last}`,
    );
    frames = bytes = dets = latencySum = 0;
  }, 1000);
  return () => clearInterval(timer);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const lifecycle = stopWith();
  const node = await createNode({ name: "monitor" });
  const stop = await runMonitor(node, (l) => console.log(l));
  lifecycle.onStop(() => {
    stop();
    return node.close();
  });
}
