/** A line plot of numeric fields over time (the last 60 s), drawn on a canvas. */
import { useEffect, useRef } from "preact/hooks";

export interface Series {
  name: string;
  points: { t: number; v: number }[];
}

const COLORS = ["#4fc3f7", "#ffb74d", "#81c784", "#e57373", "#ba68c8", "#fff176"];

export function Plot(props: { series: Series[]; windowMs?: number }) {
  const ref = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const c = ref.current;
    const ctx = c?.getContext("2d");
    if (c == null || ctx == null) return;
    const w = (c.width = c.clientWidth || 600);
    const h = (c.height = 180);
    ctx.clearRect(0, 0, w, h);
    const now = Date.now();
    const span = props.windowMs ?? 60000;
    let lo = Infinity;
    let hi = -Infinity;
    for (const s of props.series)
      for (const p of s.points) {
        if (now - p.t > span) continue;
        lo = Math.min(lo, p.v);
        hi = Math.max(hi, p.v);
      }
    if (!Number.isFinite(lo)) return;
    if (hi === lo) {
      hi += 1;
      lo -= 1;
    }
    const y = (v: number): number => h - 16 - ((v - lo) / (hi - lo)) * (h - 28);
    ctx.fillStyle = "#889";
    ctx.font = "11px sans-serif";
    ctx.fillText(hi.toPrecision(4), 4, 12);
    ctx.fillText(lo.toPrecision(4), 4, h - 4);
    props.series.forEach((s, i) => {
      ctx.strokeStyle = COLORS[i % COLORS.length]!;
      ctx.beginPath();
      let started = false;
      for (const p of s.points) {
        if (now - p.t > span) continue;
        const x = w - ((now - p.t) / span) * w;
        if (started) ctx.lineTo(x, y(p.v));
        else {
          ctx.moveTo(x, y(p.v));
          started = true;
        }
      }
      ctx.stroke();
      ctx.fillStyle = COLORS[i % COLORS.length]!;
      ctx.fillText(s.name, 80 + i * 140, 12);
    });
  });
  return <canvas class="plot" data-testid="plot" ref={ref} />;
}
