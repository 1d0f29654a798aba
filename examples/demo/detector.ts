/**
 * The detector (a module of the demo's launch spec, run as two replicas): serves
 * `/detector/detect` (demo_msgs/Detect: an image in, its objects out), declared idempotent so a
 * client retries a call on the other replica when this one dies, and `/detector/stats`
 * (std_srvs/Trigger) with its counters. Parameter: stride (int, default 4), the pixel step of the scan.
 */
import { std_srvs, vision_msgs, type LaunchContext, type Node } from "myelin";
import { Detect } from "./demo-msgs.js";
import { classOfPixel } from "./scene.js";

/** Starts a detector replica. */
export async function runDetector(node: Node, ctx: LaunchContext): Promise<void> {
  const stride = node.declareParameter("stride", {
    type: "int",
    default: 4,
    min: 1,
    max: 16,
    description: "scan every Nth pixel",
  });
  let calls = 0;
  let objects = 0;
  await node.createService(
    "/detector/detect",
    Detect,
    ({ image }) => {
      calls++;
      const boxes = new Map<string, { x0: number; y0: number; x1: number; y1: number }>();
      const s = stride.value;
      for (let y = 0; y < image.height; y += s) {
        for (let x = 0; x < image.width; x += s) {
          const o = y * image.step + x * 3;
          const cls = classOfPixel(image.data[o]!, image.data[o + 1]!, image.data[o + 2]!);
          if (cls === undefined) continue;
          const b = boxes.get(cls);
          if (b === undefined) boxes.set(cls, { x0: x, y0: y, x1: x, y1: y });
          else {
            b.x0 = Math.min(b.x0, x);
            b.y0 = Math.min(b.y0, y);
            b.x1 = Math.max(b.x1, x);
            b.y1 = Math.max(b.y1, y);
          }
        }
      }
      objects += boxes.size;
      return {
        detections: {
          header: image.header,
          detections: [...boxes].map(([cls, b]) => ({
            header: image.header,
            results: [
              {
                hypothesis: { class_id: cls, score: 0.95 },
                pose: vision_msgs.ObjectHypothesisWithPose.create().pose,
              },
            ],
            bbox: {
              center: { position: { x: (b.x0 + b.x1) / 2, y: (b.y0 + b.y1) / 2 }, theta: 0 },
              size_x: b.x1 - b.x0 + s,
              size_y: b.y1 - b.y0 + s,
            },
            id: "",
          })),
        },
        replica: node.name,
      };
    },
    { idempotent: true },
  );
  await node.createService("/detector/stats", std_srvs.Trigger, () => ({
    success: true,
    message: `replica=${node.name} calls=${calls} objects=${objects} stride=${stride.value}`,
  }));
  console.log(`detector replica ${ctx.replica} (${node.name}) serving /detector/detect`);
}
