/**
 * The demo's own types: `demo_msgs/Detect`, the detector's service (an image in, the objects found
 * in it out, with the replica that answered). Importing this module registers them, so tools
 * (`myelin service call --import`, the hub with `--import`) know them by name.
 */
import { defineService, registerType, sensor_msgs, t, vision_msgs } from "myelin";

/** Finds the objects in one camera frame. */
export const Detect = defineService(
  "demo_msgs/Detect",
  { image: t.msg(sensor_msgs.Image) },
  { detections: t.msg(vision_msgs.Detection2DArray), replica: t.string() },
);
registerType(Detect);
