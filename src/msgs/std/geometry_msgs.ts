/** ROS `geometry_msgs`: points, vectors, poses, twists, transforms, wrenches, polygons. Units are SI. */
import { defineMessage, t } from "../schema.js";
import { registerType } from "../registry.js";
import { std_msgs } from "./std_msgs.js";

const header = () => t.msg(std_msgs.Header);
const cov36 = () => t.array(t.f64(), { length: 36 });

/** A free vector: `x`, `y`, `z` (f64). */
const Vector3 = defineMessage("geometry_msgs/Vector3", { x: t.f64(), y: t.f64(), z: t.f64() });
/** A position: `x`, `y`, `z` (f64, metres). */
const Point = defineMessage("geometry_msgs/Point", { x: t.f64(), y: t.f64(), z: t.f64() });
/** A position in f32: `x`, `y`, `z`. */
const Point32 = defineMessage("geometry_msgs/Point32", { x: t.f32(), y: t.f32(), z: t.f32() });
/** An orientation: `x`, `y`, `z`, `w` (f64); `create()` gives the identity (w = 1), as ROS 2 does. */
const Quaternion = defineMessage("geometry_msgs/Quaternion", {
  x: t.f64(),
  y: t.f64(),
  z: t.f64(),
  w: t.f64({ default: 1 }),
});
/** A 2D pose (deprecated in ROS, kept for compatibility): `x`, `y` (m), `theta` (rad). */
const Pose2D = defineMessage("geometry_msgs/Pose2D", { x: t.f64(), y: t.f64(), theta: t.f64() });
/** `position` and `orientation`. */
const Pose = defineMessage("geometry_msgs/Pose", { position: t.msg(Point), orientation: t.msg(Quaternion) });
/** `header`, `pose`. */
const PoseStamped = defineMessage("geometry_msgs/PoseStamped", { header: header(), pose: t.msg(Pose) });
/** `header`, `poses` (Pose[]). */
const PoseArray = defineMessage("geometry_msgs/PoseArray", { header: header(), poses: t.array(t.msg(Pose)) });
/** `pose` and its 6x6 row-major `covariance` (x, y, z, rot x, rot y, rot z). */
const PoseWithCovariance = defineMessage("geometry_msgs/PoseWithCovariance", {
  pose: t.msg(Pose),
  covariance: cov36(),
});
/** `header`, `pose` (PoseWithCovariance). */
const PoseWithCovarianceStamped = defineMessage("geometry_msgs/PoseWithCovarianceStamped", {
  header: header(),
  pose: t.msg(PoseWithCovariance),
});
/** `header`, `point`. */
const PointStamped = defineMessage("geometry_msgs/PointStamped", { header: header(), point: t.msg(Point) });
/** `header`, `vector`. */
const Vector3Stamped = defineMessage("geometry_msgs/Vector3Stamped", {
  header: header(),
  vector: t.msg(Vector3),
});
/** `header`, `quaternion`. */
const QuaternionStamped = defineMessage("geometry_msgs/QuaternionStamped", {
  header: header(),
  quaternion: t.msg(Quaternion),
});
/** Velocity: `linear` (m/s) and `angular` (rad/s). */
const Twist = defineMessage("geometry_msgs/Twist", { linear: t.msg(Vector3), angular: t.msg(Vector3) });
/** `header`, `twist`. */
const TwistStamped = defineMessage("geometry_msgs/TwistStamped", { header: header(), twist: t.msg(Twist) });
/** `twist` and its 6x6 row-major `covariance`. */
const TwistWithCovariance = defineMessage("geometry_msgs/TwistWithCovariance", {
  twist: t.msg(Twist),
  covariance: cov36(),
});
/** `header`, `twist` (TwistWithCovariance). */
const TwistWithCovarianceStamped = defineMessage("geometry_msgs/TwistWithCovarianceStamped", {
  header: header(),
  twist: t.msg(TwistWithCovariance),
});
/** Acceleration: `linear` (m/s²) and `angular` (rad/s²). */
const Accel = defineMessage("geometry_msgs/Accel", { linear: t.msg(Vector3), angular: t.msg(Vector3) });
/** `header`, `accel`. */
const AccelStamped = defineMessage("geometry_msgs/AccelStamped", { header: header(), accel: t.msg(Accel) });
/** `translation` (m) and `rotation`. */
const Transform = defineMessage("geometry_msgs/Transform", {
  translation: t.msg(Vector3),
  rotation: t.msg(Quaternion),
});
/** The transform from `header.frame_id` to `child_frame_id`. */
const TransformStamped = defineMessage("geometry_msgs/TransformStamped", {
  header: header(),
  child_frame_id: t.string(),
  transform: t.msg(Transform),
});
/** Force (N) and torque (N·m). */
const Wrench = defineMessage("geometry_msgs/Wrench", { force: t.msg(Vector3), torque: t.msg(Vector3) });
/** `header`, `wrench`. */
const WrenchStamped = defineMessage("geometry_msgs/WrenchStamped", {
  header: header(),
  wrench: t.msg(Wrench),
});
/** A polygon: `points` (Point32[]), the last connected to the first. */
const Polygon = defineMessage("geometry_msgs/Polygon", { points: t.array(t.msg(Point32)) });
/** `header`, `polygon`. */
const PolygonStamped = defineMessage("geometry_msgs/PolygonStamped", {
  header: header(),
  polygon: t.msg(Polygon),
});

/**
 * The types of the `geometry_msgs` package. Each property is declared with an explicit type so that
 * `geometry_msgs.Vector3.assert(value)` can narrow `value` (TypeScript requires that of assertion calls).
 */
export interface GeometryMsgs {
  readonly Vector3: typeof Vector3;
  readonly Point: typeof Point;
  readonly Point32: typeof Point32;
  readonly Quaternion: typeof Quaternion;
  readonly Pose2D: typeof Pose2D;
  readonly Pose: typeof Pose;
  readonly PoseStamped: typeof PoseStamped;
  readonly PoseArray: typeof PoseArray;
  readonly PoseWithCovariance: typeof PoseWithCovariance;
  readonly PoseWithCovarianceStamped: typeof PoseWithCovarianceStamped;
  readonly PointStamped: typeof PointStamped;
  readonly Vector3Stamped: typeof Vector3Stamped;
  readonly QuaternionStamped: typeof QuaternionStamped;
  readonly Twist: typeof Twist;
  readonly TwistStamped: typeof TwistStamped;
  readonly TwistWithCovariance: typeof TwistWithCovariance;
  readonly TwistWithCovarianceStamped: typeof TwistWithCovarianceStamped;
  readonly Accel: typeof Accel;
  readonly AccelStamped: typeof AccelStamped;
  readonly Transform: typeof Transform;
  readonly TransformStamped: typeof TransformStamped;
  readonly Wrench: typeof Wrench;
  readonly WrenchStamped: typeof WrenchStamped;
  readonly Polygon: typeof Polygon;
  readonly PolygonStamped: typeof PolygonStamped;
}

/** The `geometry_msgs` package. */
export const geometry_msgs: GeometryMsgs = Object.freeze({
  Vector3,
  Point,
  Point32,
  Quaternion,
  Pose2D,
  Pose,
  PoseStamped,
  PoseArray,
  PoseWithCovariance,
  PoseWithCovarianceStamped,
  PointStamped,
  Vector3Stamped,
  QuaternionStamped,
  Twist,
  TwistStamped,
  TwistWithCovariance,
  TwistWithCovarianceStamped,
  Accel,
  AccelStamped,
  Transform,
  TransformStamped,
  Wrench,
  WrenchStamped,
  Polygon,
  PolygonStamped,
});

for (const type of Object.values(geometry_msgs)) registerType(type);
