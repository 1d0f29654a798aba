/**
 * A simulated camera node: publishes `sensor_msgs/Image` frames (rgb8, a bright square moving
 * over a dark background) on /camera/front/image with sensor-data QoS.
 *
 *   node dist/examples/camera.js            # needs a hub: `myelin hub`, or run the demo
 * Parameters: fps (double, default 15), width and height (int, default 320 × 240).
 */
import { createNode, QOS_SENSOR_DATA, sensor_msgs, timeNow, type Node } from "myelin";
import { stopWith } from "./lifecycle.js";

/** Starts the camera on `node`; resolves to a function that stops it. */
export async function runCamera(node: Node): Promise<() => void> {
  const fps = node.declareParameter("fps", {
    type: "double",
    default: 15,
    min: 0.1,
    max: 1000,
    description: "frames per second",
  });
  const width = node.declareParameter("width", { type: "int", default: 320, min: 16, max: 8192 });
  const height = node.declareParameter("height", { type: "int", default: 240, min: 16, max: 8192 });
  const pub = await node.createPublisher("/camera/front/image", sensor_msgs.Image, { qos: QOS_SENSOR_DATA });
  let frame = 0;
  const shoot = (): void => {
    const w = width.value;
    const h = height.value;
    const data = new Uint8Array(w * h * 3);
    const size = Math.floor(Math.min(w, h) / 6);
    const cx = Math.floor(((Math.sin(frame / 20) + 1) / 2) * (w - size));
    const cy = Math.floor(((Math.cos(frame / 27) + 1) / 2) * (h - size));
    for (let y = cy; y < cy + size; y++) data.fill(255, (y * w + cx) * 3, (y * w + cx + size) * 3);
    frame++;
    void pub.publish({
      header: { stamp: timeNow(), frame_id: "camera_front" },
      height: h,
      width: w,
      encoding: "rgb8",
      is_bigendian: 0,
      step: w * 3,
      data,
    });
  };
  let timer = setInterval(shoot, 1000 / fps.value);
  fps.on("change", (v) => {
    clearInterval(timer);
    timer = setInterval(shoot, 1000 / v);
  });
  return () => clearInterval(timer);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const lifecycle = stopWith();
  const node = await createNode({ name: "camera" });
  const stop = await runCamera(node);
  lifecycle.onStop(() => {
    stop();
    return node.close();
  });
}
