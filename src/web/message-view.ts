/**
 * What the page shows of a message: its JSON with long strings and arrays cut short, and, for an
 * image topic, the picture (raw pixels scaled down to at most 640 pixels wide, or the compressed
 * bytes as they are).
 */
import { toJson } from "../codec/index.js";
import { lookupType } from "../msgs/index.js";

/** A picture the page can draw: raw pixels (`encoding` as in sensor_msgs/Image) or an encoded file. */
export type ImageView =
  | { kind: "raw"; width: number; height: number; encoding: string; data: string }
  | { kind: "file"; mime: string; data: string };

/** A message as the page gets it. */
export interface MessageView {
  /** The message as JSON, shortened (see {@link shorten}). */
  json: unknown;
  /** The picture of an image message; data is base64. */
  image?: ImageView;
}

/** Encodings of sensor_msgs/Image the page draws, with their bytes per pixel. */
const RAW_ENCODINGS: Record<string, number> = { rgb8: 3, bgr8: 3, rgba8: 4, bgra8: 4, mono8: 1 };
/** The widest picture sent to the page, in pixels. */
const MAX_WIDTH = 640;

/** JSON for a person: strings over 200 characters and arrays over 32 items are cut, saying how long they were. */
export function shorten(v: unknown): unknown {
  if (typeof v === "string") return v.length > 200 ? `${v.slice(0, 200)}… (${v.length} characters)` : v;
  if (Array.isArray(v)) {
    const head = v.slice(0, 32).map(shorten);
    if (v.length > 32) head.push(`… (${v.length} items)`);
    return head;
  }
  if (typeof v === "object" && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, shorten(x)]));
  }
  return v;
}

function asBytes(v: unknown): Uint8Array | undefined {
  return v instanceof Uint8Array ? v : undefined;
}

/** The picture of a sensor_msgs/Image or sensor_msgs/CompressedImage, if it can be drawn. */
export function imageOf(typeName: string, msg: unknown): ImageView | undefined {
  if (typeof msg !== "object" || msg === null) return undefined;
  const m = msg as Record<string, unknown>;
  const data = asBytes(m["data"]);
  if (data === undefined) return undefined;
  if (typeName === "sensor_msgs/CompressedImage") {
    const format = typeof m["format"] === "string" ? m["format"].toLowerCase() : "";
    const mime = format.includes("png") ? "image/png" : format.includes("jp") ? "image/jpeg" : undefined;
    return mime === undefined
      ? undefined
      : { kind: "file", mime, data: Buffer.from(data).toString("base64") };
  }
  if (typeName !== "sensor_msgs/Image") return undefined;
  const encoding = String(m["encoding"]);
  const bpp = RAW_ENCODINGS[encoding];
  const width = Number(m["width"]);
  const height = Number(m["height"]);
  const step = Number(m["step"]) || width * (bpp ?? 0);
  if (bpp === undefined || !(width > 0 && height > 0) || data.length < step * (height - 1) + width * bpp) {
    return undefined;
  }
  const f = Math.ceil(width / MAX_WIDTH);
  if (f === 1 && step === width * bpp) {
    return { kind: "raw", width, height, encoding, data: Buffer.from(data).toString("base64") };
  }
  const w = Math.floor(width / f);
  const h = Math.floor(height / f);
  const out = Buffer.alloc(w * h * bpp);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const src = y * f * step + x * f * bpp;
      out.set(data.subarray(src, src + bpp), (y * w + x) * bpp);
    }
  }
  return { kind: "raw", width: w, height: h, encoding, data: out.toString("base64") };
}

/** The page's view of a message of type `typeName` (JSON via the registered type when known). */
export function messageView(typeName: string, msg: unknown): MessageView {
  const type = lookupType(typeName);
  let json: unknown;
  try {
    json = toJson(type, msg);
  } catch {
    json = toJson(undefined, msg);
  }
  const image = imageOf(typeName, msg);
  if (image !== undefined && typeof json === "object" && json !== null && "data" in json) {
    json = {
      ...(json as Record<string, unknown>),
      data: `(${asBytes((msg as { data: unknown }).data)?.length ?? 0} bytes, shown as the picture)`,
    };
  }
  return image === undefined ? { json: shorten(json) } : { json: shorten(json), image };
}
