/** `myelin interface list|show`: the message and service types this CLI knows. */
import { toJson } from "../codec/index.js";
import { listServices, listTypes, type AnyField, type MessageType } from "../msgs/index.js";
import { boolOpt, resolveMessageType, resolveServiceType, type CommandSpec } from "./common.js";

/** `f64`, `geometry_msgs/Vector3`, `f64[36]`, `string[]`, `u8[<=16]`, `enum {OK=0, WARN=1}`, `string?` */
export function describeField(field: AnyField): string {
  switch (field.kind) {
    case "array": {
      const of = describeField(field.of as AnyField);
      const size =
        field.length !== undefined
          ? `${field.length}`
          : field.maxLength !== undefined
            ? `<=${field.maxLength}`
            : "";
      return `${of}[${size}]`;
    }
    case "msg":
      return field.type.name;
    case "enum":
      return `enum {${Object.entries(field.values)
        .map(([k, v]) => `${k}=${v}`)
        .join(", ")}}`;
    case "optional":
      return `${describeField(field.of as AnyField)}?`;
    default:
      return field.default !== undefined
        ? `${field.kind} = ${JSON.stringify(toJson(undefined, field.default))}`
        : field.kind;
  }
}

function nestedType(field: AnyField): MessageType<unknown> | undefined {
  switch (field.kind) {
    case "msg":
      return field.type;
    case "array":
    case "optional":
      return nestedType(field.of as AnyField);
    default:
      return undefined;
  }
}

/** The fields of `type` as an indented tree, nested messages expanded. */
export function fieldTree(type: MessageType<unknown>, indent = "", out: string[] = []): string[] {
  for (const [name, f] of Object.entries(type.fields)) {
    const field = f as AnyField;
    out.push(`${indent}${name}: ${describeField(field)}`);
    const nested = nestedType(field);
    if (nested !== undefined && indent.length < 40) fieldTree(nested, `${indent}  `, out);
  }
  return out;
}

export const interfaceListCommand: CommandSpec = {
  path: ["interface", "list"],
  summary: "list the message and service types known here (the standard library and --import modules)",
  args: [],
  options: {
    json: { type: "boolean", help: 'print {"messages": [...], "services": [...]}' },
    import: {
      type: "string",
      multiple: true,
      arg: "MODULE",
      help: "import a module that registers your message types first (repeatable)",
    },
  },
  examples: ["myelin interface list", "myelin interface list --import ./dist/my_msgs.js | grep my_msgs"],
  connects: false,
  async run(ctx, inv) {
    const services = listServices();
    const hiddenNames = new Set(services.flatMap((s) => [`${s}_Request`, `${s}_Response`]));
    const messages = listTypes().filter((t) => !hiddenNames.has(t));
    if (boolOpt(inv, "json")) {
      ctx.out(JSON.stringify({ messages, services }, null, 2));
      return 0;
    }
    ctx.out("Messages:");
    for (const m of messages) ctx.out(`  ${m}`);
    ctx.out("Services:");
    for (const s of services) ctx.out(`  ${s}`);
    return 0;
  },
};

export const interfaceShowCommand: CommandSpec = {
  path: ["interface", "show"],
  summary: "show the fields of a message or service type",
  args: [{ name: "TYPE", help: "message or service type, e.g. geometry_msgs/Twist" }],
  options: {
    defaults: {
      type: "boolean",
      help: "print a complete message with every field at its default, as JSON (a DATA template)",
    },
    json: { type: "boolean", help: "print the JSON Schema of the type's JSON form" },
    import: {
      type: "string",
      multiple: true,
      arg: "MODULE",
      help: "import a module that registers your message types first (repeatable)",
    },
  },
  examples: [
    "myelin interface show geometry_msgs/Twist",
    "myelin interface show example_interfaces/AddTwoInts",
    "myelin interface show sensor_msgs/Imu --defaults",
  ],
  connects: false,
  async run(ctx, inv) {
    const name = inv.positionals[0]!;
    const parts = typeParts(name);
    if (boolOpt(inv, "json")) {
      const schemas = parts.map(([, t]) => t.jsonSchema);
      ctx.out(
        JSON.stringify(
          schemas.length === 1 ? schemas[0] : { request: schemas[0], response: schemas[1] },
          null,
          2,
        ),
      );
      return 0;
    }
    if (boolOpt(inv, "defaults")) {
      for (const [, t] of parts) ctx.out(JSON.stringify(toJson(t, t.create())));
      return 0;
    }
    for (const [title, t] of parts) {
      if (title === "") {
        ctx.out(t.name);
        for (const l of fieldTree(t, "  ")) ctx.out(l);
      } else {
        ctx.out(`${title}:`);
        for (const l of fieldTree(t, "  ")) ctx.out(l);
      }
    }
    return 0;
  },
};

/** `[["", message type]]`, or `[["Request", req], ["Response", res]]` for a service type. */
function typeParts(name: string): [string, MessageType<unknown>][] {
  try {
    return [["", resolveMessageType(name)]];
  } catch (err) {
    let s;
    try {
      s = resolveServiceType(name);
    } catch {
      throw err;
    }
    return [
      ["Request", s.request],
      ["Response", s.response],
    ];
  }
}
