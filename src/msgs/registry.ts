/**
 * The process-wide type registry: message and service types by name, so that a name read off the wire
 * (`"sensor_msgs/Image"`) can be turned back into a type. The standard library registers its types when
 * imported.
 */
import { MyelinError, TypeMismatchError } from "../errors.js";
import { processShared } from "../process-shared.js";
import {
  describeValue,
  isMessageType,
  isServiceType,
  typeSignature,
  type AnyField,
  type Field,
  type MessageType,
  type ServiceType,
} from "./schema.js";

/**
 * The registered types by name: one pair per process (src/process-shared.ts), so a type
 * registered through one copy of Myelin (a user module importing the bundle) is found through
 * every other (the CLI's modules).
 */
const { messages, services } = processShared("msgs.registry", () => ({
  messages: new Map<string, MessageType<unknown>>(),
  services: new Map<string, ServiceType<unknown, unknown>>(),
}));

function nestedTypes(field: Field<unknown>, out: MessageType<unknown>[]): void {
  const f = field as AnyField;
  switch (f.kind) {
    case "msg":
      out.push(f.type);
      return;
    case "array":
    case "optional":
      nestedTypes(f.of, out);
      return;
    default:
      return;
  }
}

function registerMessage(type: MessageType<unknown>): void {
  const existing = messages.get(type.name);
  if (existing === type) return;
  if (existing !== undefined) {
    if (typeSignature(existing) === typeSignature(type)) return; // an identical definition, e.g. a second copy of a module
    throw new TypeMismatchError(
      "ERR_TYPE_MISMATCH",
      `message type ${type.name} is already registered with different fields; ` +
        `rename one of them (types are identified by name across the whole system)`,
    );
  }
  const nested: MessageType<unknown>[] = [];
  for (const f of Object.values(type.fields)) nestedTypes(f, nested);
  for (const n of nested) registerMessage(n);
  messages.set(type.name, type);
}

/**
 * Registers a message type, or a service type with its request and response types. Message types nested
 * in it are registered too. Registering the same object again, or an identical definition (same name and
 * same fields), does nothing.
 * @throws TypeMismatchError ERR_TYPE_MISMATCH if another definition is registered under the same name.
 * @throws MyelinError ERR_INVALID_ARGUMENT if `type` was not made by `defineMessage` or `defineService`.
 */
export function registerType(type: MessageType<any> | ServiceType<any, any>): void {
  if (isMessageType(type)) {
    registerMessage(type);
    return;
  }
  if (!isServiceType(type)) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `registerType() needs a type made by defineMessage() or defineService(), got ${describeValue(type)}`,
    );
  }
  const existing = services.get(type.name);
  if (existing === type) return;
  if (
    existing !== undefined &&
    (typeSignature(existing.request) !== typeSignature(type.request) ||
      typeSignature(existing.response) !== typeSignature(type.response))
  ) {
    throw new TypeMismatchError(
      "ERR_TYPE_MISMATCH",
      `service type ${type.name} is already registered with a different request or response`,
    );
  }
  registerMessage(type.request);
  registerMessage(type.response);
  if (existing === undefined) services.set(type.name, type);
}

/** The registered message type named `name` (including service `_Request`/`_Response` types), if any. */
export function lookupType(name: string): MessageType<unknown> | undefined {
  return messages.get(name);
}

/** The registered service type named `name`, if any. */
export function lookupService(name: string): ServiceType<unknown, unknown> | undefined {
  return services.get(name);
}

/** Names of all registered message types (service request/response types included), sorted. */
export function listTypes(): string[] {
  return [...messages.keys()].sort();
}

/** Names of all registered service types, sorted. */
export function listServices(): string[] {
  return [...services.keys()].sort();
}
