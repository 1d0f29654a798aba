/** ROS `sensor_msgs`: images, camera calibration, IMU, laser scans, point clouds, GNSS, battery, joints. */
import { defineMessage, t } from "../schema.js";
import { registerType } from "../registry.js";
import { geometry_msgs } from "./geometry_msgs.js";
import { std_msgs } from "./std_msgs.js";

const header = () => t.msg(std_msgs.Header);
const cov9 = () => t.array(t.f64(), { length: 9 });

/**
 * An uncompressed image. `height`, `width` in pixels; `encoding` such as `rgb8`, `bgr8`, `mono8`,
 * `16UC1`; `is_bigendian` (u8, 0 or 1); `step` = bytes per row; `data` = `step * height` bytes.
 */
const Image = defineMessage("sensor_msgs/Image", {
  header: header(),
  height: t.u32(),
  width: t.u32(),
  encoding: t.string(),
  is_bigendian: t.u8(),
  step: t.u32(),
  data: t.bytes(),
});
/** A compressed image: `format` (`jpeg`, `png`, …) and the compressed `data`. */
const CompressedImage = defineMessage("sensor_msgs/CompressedImage", {
  header: header(),
  format: t.string(),
  data: t.bytes(),
});
/** A region of an image, in pixels; `do_rectify` asks for the rectified ROI. */
const RegionOfInterest = defineMessage("sensor_msgs/RegionOfInterest", {
  x_offset: t.u32(),
  y_offset: t.u32(),
  height: t.u32(),
  width: t.u32(),
  do_rectify: t.bool(),
});
/**
 * Camera calibration: image size, `distortion_model` (`plumb_bob`, …), distortion `d`, intrinsic `k`
 * (3x3), rectification `r` (3x3), projection `p` (3x4), all row-major; binning and region of interest.
 */
const CameraInfo = defineMessage("sensor_msgs/CameraInfo", {
  header: header(),
  height: t.u32(),
  width: t.u32(),
  distortion_model: t.string(),
  d: t.array(t.f64()),
  k: t.array(t.f64(), { length: 9 }),
  r: t.array(t.f64(), { length: 9 }),
  p: t.array(t.f64(), { length: 12 }),
  binning_x: t.u32(),
  binning_y: t.u32(),
  roi: t.msg(RegionOfInterest),
});
/**
 * An inertial measurement: orientation, angular velocity (rad/s), linear acceleration (m/s²), each with a
 * 3x3 row-major covariance; a covariance whose first element is -1 means "not provided".
 */
const Imu = defineMessage("sensor_msgs/Imu", {
  header: header(),
  orientation: t.msg(geometry_msgs.Quaternion),
  orientation_covariance: cov9(),
  angular_velocity: t.msg(geometry_msgs.Vector3),
  angular_velocity_covariance: cov9(),
  linear_acceleration: t.msg(geometry_msgs.Vector3),
  linear_acceleration_covariance: cov9(),
});
/** A planar laser scan: angles (rad), times (s), ranges (m; out-of-range values are ±Infinity or NaN). */
const LaserScan = defineMessage("sensor_msgs/LaserScan", {
  header: header(),
  angle_min: t.f32(),
  angle_max: t.f32(),
  angle_increment: t.f32(),
  time_increment: t.f32(),
  scan_time: t.f32(),
  range_min: t.f32(),
  range_max: t.f32(),
  ranges: t.array(t.f32()),
  intensities: t.array(t.f32()),
});
/** One field of a point in a PointCloud2: `name`, byte `offset`, `datatype` (see constants), `count`. */
const PointField = defineMessage("sensor_msgs/PointField", {
  name: t.string(),
  offset: t.u32(),
  datatype: t.u8(),
  count: t.u32(),
});
/**
 * A point cloud: `height` x `width` points of `point_step` bytes each, laid out by `fields`; `row_step`
 * bytes per row; `is_dense` when there are no invalid points.
 */
const PointCloud2 = defineMessage("sensor_msgs/PointCloud2", {
  header: header(),
  height: t.u32(),
  width: t.u32(),
  fields: t.array(t.msg(PointField)),
  is_bigendian: t.bool(),
  point_step: t.u32(),
  row_step: t.u32(),
  data: t.bytes(),
  is_dense: t.bool(),
});
/** GNSS fix status (i8, see constants) and the satellite services used (u16 bit mask). */
const NavSatStatus = defineMessage("sensor_msgs/NavSatStatus", { status: t.i8(), service: t.u16() });
/** A GNSS fix: latitude, longitude (degrees), altitude (m above the WGS 84 ellipsoid), ENU covariance (m²). */
const NavSatFix = defineMessage("sensor_msgs/NavSatFix", {
  header: header(),
  status: t.msg(NavSatStatus),
  latitude: t.f64(),
  longitude: t.f64(),
  altitude: t.f64(),
  position_covariance: cov9(),
  position_covariance_type: t.u8(),
});
/** Battery state: volts, °C, amperes, Ah, percentage 0..1, status/health/technology codes, per-cell values. */
const BatteryState = defineMessage("sensor_msgs/BatteryState", {
  header: header(),
  voltage: t.f32(),
  temperature: t.f32(),
  current: t.f32(),
  charge: t.f32(),
  capacity: t.f32(),
  design_capacity: t.f32(),
  percentage: t.f32(),
  power_supply_status: t.u8(),
  power_supply_health: t.u8(),
  power_supply_technology: t.u8(),
  present: t.bool(),
  cell_voltage: t.array(t.f32()),
  cell_temperature: t.array(t.f32()),
  location: t.string(),
  serial_number: t.string(),
});
/** A temperature in °C and its variance. */
const Temperature = defineMessage("sensor_msgs/Temperature", {
  header: header(),
  temperature: t.f64(),
  variance: t.f64(),
});
/** Relative humidity 0..1 and its variance. */
const RelativeHumidity = defineMessage("sensor_msgs/RelativeHumidity", {
  header: header(),
  relative_humidity: t.f64(),
  variance: t.f64(),
});
/** Pressure in pascals and its variance. */
const FluidPressure = defineMessage("sensor_msgs/FluidPressure", {
  header: header(),
  fluid_pressure: t.f64(),
  variance: t.f64(),
});
/** Illuminance in lux and its variance. */
const Illuminance = defineMessage("sensor_msgs/Illuminance", {
  header: header(),
  illuminance: t.f64(),
  variance: t.f64(),
});
/** A magnetic field in tesla and its 3x3 row-major covariance. */
const MagneticField = defineMessage("sensor_msgs/MagneticField", {
  header: header(),
  magnetic_field: t.msg(geometry_msgs.Vector3),
  magnetic_field_covariance: cov9(),
});
/** A joystick: `axes` (f32, -1..1) and `buttons` (i32). */
const Joy = defineMessage("sensor_msgs/Joy", {
  header: header(),
  axes: t.array(t.f32()),
  buttons: t.array(t.i32()),
});
/** Joint states by `name`: `position` (rad or m), `velocity` (/s), `effort` (N·m or N); arrays may be empty. */
const JointState = defineMessage("sensor_msgs/JointState", {
  header: header(),
  name: t.array(t.string()),
  position: t.array(t.f64()),
  velocity: t.array(t.f64()),
  effort: t.array(t.f64()),
});

/**
 * The types of the `sensor_msgs` package. Each property is declared with an explicit type so that
 * `sensor_msgs.Image.assert(value)` can narrow `value` (TypeScript requires that of assertion calls).
 */
export interface SensorMsgs {
  readonly Image: typeof Image;
  readonly CompressedImage: typeof CompressedImage;
  readonly RegionOfInterest: typeof RegionOfInterest;
  readonly CameraInfo: typeof CameraInfo;
  readonly Imu: typeof Imu;
  readonly LaserScan: typeof LaserScan;
  readonly PointField: typeof PointField;
  readonly PointCloud2: typeof PointCloud2;
  readonly NavSatStatus: typeof NavSatStatus;
  readonly NavSatFix: typeof NavSatFix;
  readonly BatteryState: typeof BatteryState;
  readonly Temperature: typeof Temperature;
  readonly RelativeHumidity: typeof RelativeHumidity;
  readonly FluidPressure: typeof FluidPressure;
  readonly Illuminance: typeof Illuminance;
  readonly MagneticField: typeof MagneticField;
  readonly Joy: typeof Joy;
  readonly JointState: typeof JointState;
}

/** The `sensor_msgs` package. */
export const sensor_msgs: SensorMsgs = Object.freeze({
  Image,
  CompressedImage,
  RegionOfInterest,
  CameraInfo,
  Imu,
  LaserScan,
  PointField,
  PointCloud2,
  NavSatStatus,
  NavSatFix,
  BatteryState,
  Temperature,
  RelativeHumidity,
  FluidPressure,
  Illuminance,
  MagneticField,
  Joy,
  JointState,
});

/** Constants of `sensor_msgs` types, named as in ROS (`sensor_msgs_constants.PointField.FLOAT32`). */
export const sensor_msgs_constants = Object.freeze({
  PointField: Object.freeze({
    INT8: 1,
    UINT8: 2,
    INT16: 3,
    UINT16: 4,
    INT32: 5,
    UINT32: 6,
    FLOAT32: 7,
    FLOAT64: 8,
  } as const),
  NavSatStatus: Object.freeze({
    STATUS_UNKNOWN: -2,
    STATUS_NO_FIX: -1,
    STATUS_FIX: 0,
    STATUS_SBAS_FIX: 1,
    STATUS_GBAS_FIX: 2,
    SERVICE_GPS: 1,
    SERVICE_GLONASS: 2,
    SERVICE_COMPASS: 4,
    SERVICE_GALILEO: 8,
  } as const),
  NavSatFix: Object.freeze({
    COVARIANCE_TYPE_UNKNOWN: 0,
    COVARIANCE_TYPE_APPROXIMATED: 1,
    COVARIANCE_TYPE_DIAGONAL_KNOWN: 2,
    COVARIANCE_TYPE_KNOWN: 3,
  } as const),
  BatteryState: Object.freeze({
    POWER_SUPPLY_STATUS_UNKNOWN: 0,
    POWER_SUPPLY_STATUS_CHARGING: 1,
    POWER_SUPPLY_STATUS_DISCHARGING: 2,
    POWER_SUPPLY_STATUS_NOT_CHARGING: 3,
    POWER_SUPPLY_STATUS_FULL: 4,
    POWER_SUPPLY_HEALTH_UNKNOWN: 0,
    POWER_SUPPLY_HEALTH_GOOD: 1,
    POWER_SUPPLY_HEALTH_OVERHEAT: 2,
    POWER_SUPPLY_HEALTH_DEAD: 3,
    POWER_SUPPLY_HEALTH_OVERVOLTAGE: 4,
    POWER_SUPPLY_HEALTH_UNSPEC_FAILURE: 5,
    POWER_SUPPLY_HEALTH_COLD: 6,
    POWER_SUPPLY_HEALTH_WATCHDOG_TIMER_EXPIRE: 7,
    POWER_SUPPLY_HEALTH_SAFETY_TIMER_EXPIRE: 8,
    POWER_SUPPLY_TECHNOLOGY_UNKNOWN: 0,
    POWER_SUPPLY_TECHNOLOGY_NIMH: 1,
    POWER_SUPPLY_TECHNOLOGY_LION: 2,
    POWER_SUPPLY_TECHNOLOGY_LIPO: 3,
    POWER_SUPPLY_TECHNOLOGY_LIFE: 4,
    POWER_SUPPLY_TECHNOLOGY_NICD: 5,
    POWER_SUPPLY_TECHNOLOGY_LIMN: 6,
  } as const),
});

for (const type of Object.values(sensor_msgs)) registerType(type);
