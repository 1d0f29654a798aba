/**
 * Synthetic camera frames with moving objects: a white square and a red disc travelling on
 * Lissajous paths over a dark gradient, different for each camera. rgb8, `width` × `height`.
 */

/** The objects a scene holds, by class. */
export const CLASSES = ["square", "disc"] as const;

/** Where each object is in frame `n` of camera `seed`: top-left corner and size, in pixels. */
export function objectsAt(
  n: number,
  seed: number,
  width: number,
  height: number,
): { cls: string; x: number; y: number; size: number }[] {
  const size = Math.floor(Math.min(width, height) / 6);
  const path = (a: number, b: number, phase: number): { x: number; y: number } => ({
    x: Math.floor(((Math.sin(n / a + phase) + 1) / 2) * (width - size)),
    y: Math.floor(((Math.cos(n / b + phase * 1.7) + 1) / 2) * (height - size)),
  });
  return [
    { cls: "square", ...path(20 + seed * 3, 27 + seed * 5, seed), size },
    { cls: "disc", ...path(31 + seed * 4, 17 + seed * 2, seed + 2), size: Math.floor(size * 0.8) },
  ];
}

/** Renders frame `n` of camera `seed` into `out` (rgb8, length width × height × 3). */
export function renderFrame(out: Uint8Array, n: number, seed: number, width: number, height: number): void {
  for (let y = 0; y < height; y++) {
    const shade = 20 + Math.floor((y / height) * 40);
    const row = y * width * 3;
    for (let x = 0; x < width; x++) {
      const o = row + x * 3;
      out[o] = shade;
      out[o + 1] = shade + 8;
      out[o + 2] = shade + 24;
    }
  }
  for (const obj of objectsAt(n, seed, width, height)) {
    const r = obj.size / 2;
    for (let y = obj.y; y < obj.y + obj.size; y++) {
      for (let x = obj.x; x < obj.x + obj.size; x++) {
        if (obj.cls === "disc" && (x - obj.x - r) ** 2 + (y - obj.y - r) ** 2 > r * r) continue;
        const o = (y * width + x) * 3;
        if (obj.cls === "square") out.fill(255, o, o + 3);
        else {
          out[o] = 230;
          out[o + 1] = 40;
          out[o + 2] = 40;
        }
      }
    }
  }
}

/** The class of a pixel (r, g, b), or undefined for the background. */
export function classOfPixel(r: number, g: number, b: number): string | undefined {
  if (r >= 200 && g >= 200 && b >= 200) return "square";
  if (r >= 180 && g < 90 && b < 90) return "disc";
  return undefined;
}
