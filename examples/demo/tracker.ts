/**
 * The tracker (a module of the demo's launch spec): sends each camera's frames to the detector
 * service (`/detector/detect`, balanced over its replicas; at most one call in flight per camera,
 * newer frames wait their turn and older ones are skipped), follows each object from frame to frame
 * with a stable id, publishes the tracks on `/detections` (vision_msgs/Detection2DArray), and raises
 * an alert on the durable topic `/alerts` when an object enters the restricted zone (the right
 * quarter of the frame). `/tracker/stats` (std_srvs/Trigger) tells how many detector calls
 * succeeded and failed, and which replicas answered.
 */
import { sensor_msgs, std_msgs, std_srvs, vision_msgs, type LaunchContext, type Node } from "myelin";
import type { MessageOf } from "myelin";
import { Detect } from "./demo-msgs.js";

type Image = MessageOf<typeof sensor_msgs.Image>;

interface Track {
  id: string;
  cls: string;
  x: number;
  y: number;
  inZone: boolean;
  seenAt: number;
}

/** Starts the tracker; returns its stop function. */
export async function runTracker(node: Node, ctx: LaunchContext): Promise<() => void> {
  const cameras = ctx.args.length > 0 ? ctx.args : ["front", "rear"];
  const detect = node.createClient("/detector/detect", Detect, {
    timeoutMs: 4000,
    attemptTimeoutMs: 600,
    retries: 3,
    retryBudget: { ratio: 0.5, burst: 20 },
  });
  const dets = await node.createPublisher("/detections", vision_msgs.Detection2DArray);
  const alerts = await node.createPublisher("/alerts", std_msgs.String, {
    qos: { durability: "persistent" },
  });
  let calls = 0;
  let failed = 0;
  let lastError = "";
  const byReplica = new Map<string, number>();
  for (const cam of cameras) {
    const tracks: Track[] = [];
    let next = 1;
    let busy = false;
    let waiting: Image | undefined;
    const handle = async (img: Image): Promise<void> => {
      busy = true;
      try {
        calls++;
        const r = await detect.call({ image: img });
        byReplica.set(r.replica, (byReplica.get(r.replica) ?? 0) + 1);
        const now = Date.now();
        const out = [];
        // Squares first: in a new scene they get the first ids.
        const found = [...r.detections.detections].sort(
          (a, b) =>
            (a.results[0]?.hypothesis.class_id ?? "").localeCompare(b.results[0]?.hypothesis.class_id ?? "") *
            -1,
        );
        for (const d of found) {
          const cls = d.results[0]?.hypothesis.class_id ?? "?";
          const { x, y } = d.bbox.center.position;
          let best: Track | undefined;
          let bestDist = 80;
          for (const t of tracks) {
            const dist = Math.hypot(t.x - x, t.y - y);
            if (t.cls === cls && dist < bestDist) {
              best = t;
              bestDist = dist;
            }
          }
          if (best === undefined)
            tracks.push((best = { id: `track-${next++}`, cls, x, y, inZone: false, seenAt: now }));
          best.x = x;
          best.y = y;
          best.seenAt = now;
          const inZone = x > img.width * 0.75;
          if (inZone && !best.inZone) {
            void alerts
              .publish({
                data: JSON.stringify({
                  camera: cam,
                  track: best.id,
                  class: cls,
                  event: "entered the restricted zone",
                  at: now,
                }),
              })
              .catch((err: unknown) => console.error(`alert not stored: ${(err as Error).message}`));
          }
          best.inZone = inZone;
          out.push({ ...d, id: best.id });
        }
        for (let i = tracks.length - 1; i >= 0; i--) if (now - tracks[i]!.seenAt > 3000) tracks.splice(i, 1);
        out.sort((a, b) => Number(a.id.slice(6)) - Number(b.id.slice(6)));
        await dets.publish({ header: img.header, detections: out });
      } catch (err) {
        failed++;
        lastError = (err as Error).message;
        console.error(`detector call failed (${failed} so far): ${lastError}`);
      } finally {
        busy = false;
        const w = waiting;
        waiting = undefined;
        if (w !== undefined) void handle(w);
      }
    };
    await node.createSubscription(
      `/camera/${cam}/image`,
      sensor_msgs.Image,
      (img) => {
        if (busy) waiting = img;
        else void handle(img);
      },
      { qos: { reliability: "best-effort", depth: 2 } },
    );
  }
  await node.createService("/tracker/stats", std_srvs.Trigger, () => ({
    success: failed === 0,
    message: `calls=${calls} failed=${failed} replicas=${[...byReplica].map(([k, v]) => `${k}:${v}`).join(",")}${lastError !== "" ? ` last_error=${lastError}` : ""}`,
  }));
  const timer = setInterval(() => {
    console.log(
      `detector calls ${calls}, failed ${failed}; answered by ${[...byReplica].map(([k, v]) => `${k} ${v}`).join(", ")}`,
    );
  }, 10000);
  return () => clearInterval(timer);
}
