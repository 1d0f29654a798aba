/** A list that renders only the rows in view (fixed row height), so 1,000s of rows stay fast. */
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";

export function VirtualList<T>(props: {
  items: readonly T[];
  rowHeight: number;
  height: number;
  row: (item: T, index: number) => ComponentChildren;
  /** Told which items are on screen (first, last index), e.g. to watch their topics. */
  onRange?: (first: number, last: number) => void;
  /** Keep the view at the bottom while it is there (logs). */
  follow?: boolean;
  testid?: string;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const atBottom = useRef(true);
  const total = props.items.length * props.rowHeight;
  const first = Math.max(0, Math.floor(top / props.rowHeight) - 5);
  const last = Math.min(props.items.length, Math.ceil((top + props.height) / props.rowHeight) + 5);
  useEffect(() => props.onRange?.(first, last), [first, last, props.items]);
  useEffect(() => {
    const el = ref.current;
    if (props.follow === true && atBottom.current && el !== null) el.scrollTop = el.scrollHeight;
  }, [props.items.length]);
  return (
    <div
      ref={ref}
      class="vlist"
      data-testid={props.testid}
      style={{ height: `${props.height}px` }}
      onScroll={(e) => {
        const el = e.currentTarget;
        atBottom.current = el.scrollTop + el.clientHeight >= el.scrollHeight - props.rowHeight;
        setTop(el.scrollTop);
      }}
    >
      <div style={{ height: `${total}px`, position: "relative" }}>
        {props.items.slice(first, last).map((it, i) => (
          <div
            class="vrow"
            key={first + i}
            style={{ top: `${(first + i) * props.rowHeight}px`, height: `${props.rowHeight}px` }}
          >
            {props.row(it, first + i)}
          </div>
        ))}
      </div>
    </div>
  );
}
