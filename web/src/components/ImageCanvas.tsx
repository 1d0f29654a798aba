/** Draws an image message: raw pixels (rgb8, bgr8, rgba8, bgra8, mono8) on a canvas, or a JPEG/PNG. */
import { useEffect, useRef } from "preact/hooks";
import type { ImageView } from "../types";

function decode(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export function ImageCanvas(props: { image: ImageView; at: number }) {
  const ref = useRef<HTMLCanvasElement>(null);
  const img = props.image;
  useEffect(() => {
    const c = ref.current;
    if (c === null || img.kind !== "raw") return;
    const src = decode(img.data);
    c.width = img.width;
    c.height = img.height;
    const ctx = c.getContext("2d");
    if (ctx === null) return;
    const out = ctx.createImageData(img.width, img.height);
    const px = img.width * img.height;
    const bpp = src.length / px;
    const bgr = img.encoding.startsWith("bgr");
    for (let i = 0; i < px; i++) {
      const o = i * 4;
      if (bpp === 1) {
        out.data[o] = out.data[o + 1] = out.data[o + 2] = src[i]!;
      } else {
        const s = i * bpp;
        out.data[o] = src[s + (bgr ? 2 : 0)]!;
        out.data[o + 1] = src[s + 1]!;
        out.data[o + 2] = src[s + (bgr ? 0 : 2)]!;
      }
      out.data[o + 3] = 255;
    }
    ctx.putImageData(out, 0, 0);
  }, [props.at]);
  if (img.kind === "file") {
    return <img class="topic-image" data-testid="topic-image" src={`data:${img.mime};base64,${img.data}`} />;
  }
  return <canvas class="topic-image" data-testid="topic-image" ref={ref} />;
}
