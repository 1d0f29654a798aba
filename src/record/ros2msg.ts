/**
 * The ROS 2 message definition (`ros2msg` schema encoding) of a Myelin message type: the `.msg` text
 * of the type followed by the definition of every type it uses, each after a line of 80 `=` and a
 * `MSG: pkg/Name` line, as rosbag2 writes them into MCAP files. Viewers parse this text to decode `cdr`
 * messages. No I/O.
 */
import { MyelinError } from "../errors.js";
import type { AnyField, Field, MessageType } from "../msgs/index.js";

const SEPARATOR = "=".repeat(80);

const ROS_SCALAR: Record<string, string> = {
  bool: "bool",
  u8: "uint8",
  u16: "uint16",
  u32: "uint32",
  u64: "uint64",
  i8: "int8",
  i16: "int16",
  i32: "int32",
  i64: "int64",
  f32: "float32",
  f64: "float64",
  string: "string",
  bytes: "uint8[]",
  time: "builtin_interfaces/Time",
  duration: "builtin_interfaces/Duration",
};

const STAMP_DEFINITIONS: Record<string, string> = {
  "builtin_interfaces/Time": "int32 sec\nuint32 nanosec",
  "builtin_interfaces/Duration": "int32 sec\nuint32 nanosec",
};

/** The ROS 2 name of a Myelin type name: `sensor_msgs/Image` → `sensor_msgs/msg/Image`. */
export function ros2TypeName(myelinName: string): string {
  const slash = myelinName.indexOf("/");
  return `${myelinName.slice(0, slash)}/msg/${myelinName.slice(slash + 1)}`;
}

/** The Myelin name of a ROS 2 type name: `sensor_msgs/msg/Image` → `sensor_msgs/Image` (others unchanged). */
export function myelinTypeName(rosName: string): string {
  return rosName.replace(/^([a-z][a-z0-9_]*)\/msg\/([A-Za-z][A-Za-z0-9_]*)$/, "$1/$2");
}

function fieldType(
  field: Field<unknown>,
  where: string,
  uses: (t: MessageType<unknown> | string) => void,
): string {
  const f = field as AnyField;
  switch (f.kind) {
    case "array": {
      const el = fieldType(f.of, where, uses);
      if (el.endsWith("]")) {
        throw new MyelinError(
          "ERR_INVALID_ARGUMENT",
          `${where}: ROS 2 has no arrays of arrays (or of bytes)`,
        );
      }
      if (f.length !== undefined) return `${el}[${f.length}]`;
      if (f.maxLength !== undefined) return `${el}[<=${f.maxLength}]`;
      return `${el}[]`;
    }
    case "msg":
      uses(f.type);
      return f.type.name;
    case "enum":
    case "optional":
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `${where} is ${f.kind === "enum" ? "an enum" : "optional"}: ROS 2 message definitions cannot express it`,
      );
    case "time":
    case "duration":
      uses(ROS_SCALAR[f.kind]!);
      return ROS_SCALAR[f.kind]!;
    default:
      return ROS_SCALAR[f.kind]!;
  }
}

/**
 * The `ros2msg` schema text of `type`, dependencies included (depth first, each once).
 * @throws MyelinError ERR_INVALID_ARGUMENT if the type has an enum, an optional field or an array of
 *   bytes (see `cdrUnsupported`).
 */
export function ros2MessageDefinition(type: MessageType<unknown>): string {
  const order: string[] = [];
  const texts = new Map<string, string>();
  const visit = (t: MessageType<unknown>): string => {
    const lines: string[] = [];
    for (const [k, f] of Object.entries(t.fields)) {
      lines.push(
        `${fieldType(f, `${t.name}.${k}`, (dep) => {
          const name = typeof dep === "string" ? dep : dep.name;
          if (texts.has(name)) return;
          texts.set(name, ""); // reserve: a type used twice is defined once
          order.push(name);
          texts.set(name, typeof dep === "string" ? STAMP_DEFINITIONS[dep]! : visit(dep));
        })} ${k}`,
      );
    }
    return lines.join("\n");
  };
  const main = visit(type);
  const parts = [main];
  for (const name of order) parts.push(`${SEPARATOR}\nMSG: ${name}\n${texts.get(name)!}`);
  return parts.join("\n");
}
