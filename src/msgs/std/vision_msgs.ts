/** ROS 2 `vision_msgs` (version 4): 2D/3D detections, bounding boxes, class hypotheses. */
import { defineMessage, t } from "../schema.js";
import { registerType } from "../registry.js";
import { geometry_msgs } from "./geometry_msgs.js";
import { std_msgs } from "./std_msgs.js";

/** A point in an image: `x`, `y` (f64, pixels). */
const Point2D = defineMessage("vision_msgs/Point2D", { x: t.f64(), y: t.f64() });
/** A 2D pose in an image: `position` (pixels) and `theta` (rad). */
const Pose2D = defineMessage("vision_msgs/Pose2D", { position: t.msg(Point2D), theta: t.f64() });
/** A 2D box: `center` pose and `size_x`, `size_y` (pixels). */
const BoundingBox2D = defineMessage("vision_msgs/BoundingBox2D", {
  center: t.msg(Pose2D),
  size_x: t.f64(),
  size_y: t.f64(),
});
/** A 3D box: `center` pose and `size` (m). */
const BoundingBox3D = defineMessage("vision_msgs/BoundingBox3D", {
  center: t.msg(geometry_msgs.Pose),
  size: t.msg(geometry_msgs.Vector3),
});
/** A class and its score: `class_id` (string), `score` (f64, 0..1 by convention). */
const ObjectHypothesis = defineMessage("vision_msgs/ObjectHypothesis", {
  class_id: t.string(),
  score: t.f64(),
});
/** A class hypothesis with a 6D pose. */
const ObjectHypothesisWithPose = defineMessage("vision_msgs/ObjectHypothesisWithPose", {
  hypothesis: t.msg(ObjectHypothesis),
  pose: t.msg(geometry_msgs.PoseWithCovariance),
});
/** Class probabilities for a whole input: `results` (ObjectHypothesis[]). */
const Classification = defineMessage("vision_msgs/Classification", {
  header: t.msg(std_msgs.Header),
  results: t.array(t.msg(ObjectHypothesis)),
});
/** One 2D detection: class `results`, `bbox`, and `id`, the track id (empty if untracked). */
const Detection2D = defineMessage("vision_msgs/Detection2D", {
  header: t.msg(std_msgs.Header),
  results: t.array(t.msg(ObjectHypothesisWithPose)),
  bbox: t.msg(BoundingBox2D),
  id: t.string(),
});
/** The 2D detections of one image. */
const Detection2DArray = defineMessage("vision_msgs/Detection2DArray", {
  header: t.msg(std_msgs.Header),
  detections: t.array(t.msg(Detection2D)),
});
/** One 3D detection: class `results`, `bbox`, and `id`, the track id. */
const Detection3D = defineMessage("vision_msgs/Detection3D", {
  header: t.msg(std_msgs.Header),
  results: t.array(t.msg(ObjectHypothesisWithPose)),
  bbox: t.msg(BoundingBox3D),
  id: t.string(),
});
/** The 3D detections of one input. */
const Detection3DArray = defineMessage("vision_msgs/Detection3DArray", {
  header: t.msg(std_msgs.Header),
  detections: t.array(t.msg(Detection3D)),
});

/**
 * The types of the `vision_msgs` package. Each property is declared with an explicit type so that
 * `vision_msgs.Point2D.assert(value)` can narrow `value` (TypeScript requires that of assertion calls).
 */
export interface VisionMsgs {
  readonly Point2D: typeof Point2D;
  readonly Pose2D: typeof Pose2D;
  readonly BoundingBox2D: typeof BoundingBox2D;
  readonly BoundingBox3D: typeof BoundingBox3D;
  readonly ObjectHypothesis: typeof ObjectHypothesis;
  readonly ObjectHypothesisWithPose: typeof ObjectHypothesisWithPose;
  readonly Classification: typeof Classification;
  readonly Detection2D: typeof Detection2D;
  readonly Detection2DArray: typeof Detection2DArray;
  readonly Detection3D: typeof Detection3D;
  readonly Detection3DArray: typeof Detection3DArray;
}

/** The `vision_msgs` package. */
export const vision_msgs: VisionMsgs = Object.freeze({
  Point2D,
  Pose2D,
  BoundingBox2D,
  BoundingBox3D,
  ObjectHypothesis,
  ObjectHypothesisWithPose,
  Classification,
  Detection2D,
  Detection2DArray,
  Detection3D,
  Detection3DArray,
});

for (const type of Object.values(vision_msgs)) registerType(type);
