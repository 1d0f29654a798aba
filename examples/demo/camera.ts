/**
 * A simulated camera (a module of the demo's launch spec): publishes `sensor_msgs/Image` frames
 * of a synthetic scene on `/camera/<name>/image` with sensor-data QoS. `args[0]` names the camera
 * (default `front`). Parameters: fps (default 12), width and height (default 320 × 240).
 */
import { QOS_SENSOR_DATA, sensor_msgs, timeNow, type LaunchContext, type Node } from "myelin";
import { renderFrame } from "./scene.js";

/** Starts the camera; returns its stop function. */
export async function runCamera(node: Node, ctx: LaunchContext): Promise<() => void> {
  const name = ctx.args[0] ?? "front";
  const seed = name === "front" ? 0 : 1;
  const fps = node.declareParameter("fps", {
    type: "double",
    default: 12,
    min: 0.1,
    max: 120,
    description: "frames per second",
  });
  const width = node.declareParameter("width", { type: "int", default: 320, min: 16, max: 4096 });
  const height = node.declareParameter("height", { type: "int", default: 240, min: 16, max: 4096 });
  const pub = await node.createPublisher(`/camera/${name}/image`, sensor_msgs.Image, {
    qos: QOS_SENSOR_DATA,
  });
  let frame = 0;
  const shoot = (): void => {
    const w = width.value;
    const h = height.value;
    const data = new Uint8Array(w * h * 3);
    renderFrame(data, frame++, seed, w, h);
    void pub.publish({
      header: { stamp: timeNow(), frame_id: `camera_${name}` },
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
  console.log(`camera ${name}: ${width.value}x${height.value} at ${fps.value} fps on ${pub.topic}`);
  return () => clearInterval(timer);
}
