/**
 * A detector node: finds the bright object in each camera frame and publishes a
 * `vision_msgs/Detection2DArray` on /detections (class, score, bounding box and a track id).
 * Serves /detector/stats (std_srvs/Trigger) with its counters.
 *
 *   node dist/examples/detector.js          # needs a hub and a camera
 * Parameter: threshold (int 0..255, default 200), the brightness that counts as the object.
 */
import { createNode, sensor_msgs, std_srvs, vision_msgs, type Node } from "myelin";
import { stopWith } from "./lifecycle.js";

/** Starts the detector on `node`. */
export async function runDetector(node: Node): Promise<void> {
  const threshold = node.declareParameter("threshold", { type: "int", default: 200, min: 0, max: 255 });
  const pub = await node.createPublisher("/detections", vision_msgs.Detection2DArray);
  let frames = 0;
  let detections = 0;
  await node.createSubscription(
    "/camera/front/image",
    sensor_msgs.Image,
    (img) => {
      frames++;
      let minX = Infinity;
      let minY = Infinity;
      let maxX = -1;
      let maxY = -1;
      const t = threshold.value;
      // Sample every 4th pixel: enough for a box, cheap enough for a demo.
      for (let y = 0; y < img.height; y += 4) {
        for (let x = 0; x < img.width; x += 4) {
          if (img.data[y * img.step + x * 3]! >= t) {
            if (x < minX) minX = x;
            if (x > maxX) maxX = x;
            if (y < minY) minY = y;
            if (y > maxY) maxY = y;
          }
        }
      }
      const found = maxX >= 0;
      if (found) detections++;
      void pub.publish({
        header: img.header,
        detections: found
          ? [
              {
                header: img.header,
                results: [
                  {
                    hypothesis: { class_id: "square", score: 0.99 },
                    pose: vision_msgs.ObjectHypothesisWithPose.create().pose,
                  },
                ],
                bbox: {
                  center: { position: { x: (minX + maxX) / 2, y: (minY + maxY) / 2 }, theta: 0 },
                  size_x: maxX - minX + 4,
                  size_y: maxY - minY + 4,
                },
                id: "track-1",
              },
            ]
          : [],
      });
    },
    { qos: { reliability: "best-effort", depth: 5 } },
  );
  await node.createService("/detector/stats", std_srvs.Trigger, () => ({
    success: true,
    message: `frames=${frames} detections=${detections} threshold=${threshold.value}`,
  }));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const lifecycle = stopWith();
  const node = await createNode({ name: "detector" });
  await runDetector(node);
  lifecycle.onStop(() => node.close());
}
