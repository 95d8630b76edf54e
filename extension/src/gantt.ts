// A run's Gantt timeline: pure layout (scales, ticks, segments; tested in node) and its SVG,
// drawn with DOM calls only (names are text nodes, never markup). Colours mirror nbflow/states.py.
import { Wire } from './tokens';

/** The colour each task state is drawn in (nbflow/states.py COLOURS). */
export const STATE_COLOURS: { [state: string]: string } = {
  success: '#8fd19e',
  failed: '#f28b82',
  running: '#8ab4f8',
  upstream_failed: '#fbbc04',
  interrupted: '#d7aefb',
  pending: '#e8eaed',
  up_for_retry: '#fdd663',
  skipped: '#dadce0',
  up_to_date: '#ccff90'
};
export const NO_STATE_COLOUR = '#ffffff';

export function stateColour(state: string | null | undefined): string {
  return (state && STATE_COLOURS[state]) || NO_STATE_COLOUR;
}

/** Seconds as a person reads them: 0.4s, 12s, 3m 05s, 1h 02m. */
export function formatSeconds(s: number | null | undefined): string {
  if (s === null || s === undefined || !isFinite(s)) {
    return '…';
  }
  if (s < 10) {
    return `${Math.round(s * 10) / 10}s`;
  }
  if (s < 60) {
    return `${Math.round(s)}s`;
  }
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 3600) {
    return `${Math.floor(s / 60)}m ${pad(Math.round(s % 60) % 60)}s`;
  }
  return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
}

/** A 1, 2 or 5 times a power of ten step giving about ``target`` intervals over ``span``. */
export function niceStep(span: number, target = 6): number {
  if (!(span > 0)) {
    return 1;
  }
  const raw = span / Math.max(1, target);
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) {
    if (raw <= m * power) {
      return m * power;
    }
  }
  return 10 * power;
}

/** Tick values from 0 to at least ``span`` (the last one covers it). */
export function ticks(span: number, target = 6): number[] {
  const step = niceStep(span, target);
  const out: number[] = [];
  for (let i = 0; out.length === 0 || out[out.length - 1] < span - 1e-9; i++) {
    out.push(Math.round(i * step * 1e6) / 1e6);
  }
  return out;
}

export type SegmentKind = 'queued' | 'kernel' | 'running';

export interface ISegment {
  task: string;
  attempt: number;
  state: string;
  kind: SegmentKind;
  x: number;
  width: number;
  y: number;
  height: number;
  fill: string;
  /** what a tooltip says */
  title: string;
}

export interface IGanttLayout {
  width: number;
  height: number;
  labelWidth: number;
  rows: { task: string; y: number; attempts: number; state: string }[];
  segments: ISegment[];
  ticks: { x: number; label: string }[];
  /** seconds the axis spans */
  span: number;
  axisY: number;
}

export interface IGanttOptions {
  width?: number;
  rowHeight?: number;
  labelWidth?: number;
  /** seconds since the run's start now: where an attempt still running ends */
  now?: number;
}

const AXIS = 22;

/** Where every attempt's queued, kernel-start and running parts go; one row per task. */
export function ganttLayout(tl: Wire.ITimeline, options: IGanttOptions = {}): IGanttLayout {
  const width = Math.max(200, options.width ?? 800);
  const rowHeight = options.rowHeight ?? 22;
  const labelWidth = options.labelWidth ?? 160;
  const bars = tl.bars ?? [];
  const lastEnd = Math.max(0, ...bars.map(b => b.end_s ?? b.start_s), ...bars.map(b => b.ready_s ?? 0));
  const now = Math.max(options.now ?? 0, tl.state === 'running' ? tl.now_s ?? 0 : 0, lastEnd);
  const span = Math.max(tl.duration_s ?? 0, now, 1e-3);
  const axisTicks = ticks(span);
  const top = axisTicks[axisTicks.length - 1];
  const plot = width - labelWidth - 12;
  const x = (s: number) => labelWidth + (Math.max(0, s) / top) * plot;
  const rows: IGanttLayout['rows'] = [];
  const rowOf = new Map<string, number>();
  for (const task of [...(tl.tasks ?? []), ...bars.map(b => b.task)]) {
    if (!rowOf.has(task)) {
      rowOf.set(task, rows.length);
      rows.push({ task, y: AXIS + rows.length * rowHeight, attempts: 0, state: tl.states?.[task] ?? '' });
    }
  }
  for (const b of bars) {
    const row = rows[rowOf.get(b.task)!];
    row.attempts++;
    row.state = tl.states?.[b.task] ?? b.state;
  }
  const segments: ISegment[] = [];
  const pad = 4;
  for (const b of bars) {
    const y = rows[rowOf.get(b.task)!].y + pad;
    const h = rowHeight - 2 * pad;
    const end = b.end_s ?? now;
    const label = `${b.task} · attempt ${b.attempt} · ${b.state}`;
    const add = (kind: SegmentKind, from: number, to: number, fill: string, what: string) => {
      if (to > from || kind === 'running') {
        segments.push({ task: b.task, attempt: b.attempt, state: b.state, kind, x: x(from), width: Math.max(kind === 'running' ? 2 : 0, x(to) - x(from)), y, height: h, fill, title: `${label}\n${what} ${formatSeconds(Math.max(0, to - from))}` });
      }
    };
    if (b.ready_s !== null && b.ready_s < b.start_s) {
      add('queued', b.ready_s, b.start_s, 'none', 'queued');
    }
    const kernel = b.kernel_ready_s !== null && b.kernel_ready_s > b.start_s ? Math.min(b.kernel_ready_s, end) : null;
    if (kernel !== null) {
      add('kernel', b.start_s, kernel, stateColour(b.state), 'kernel start');
    }
    add('running', kernel ?? b.start_s, end, stateColour(b.state), b.end_s === null ? 'running for' : 'ran');
  }
  return {
    width,
    height: AXIS + rows.length * rowHeight + 4,
    labelWidth,
    rows,
    segments,
    ticks: axisTicks.map(t => ({ x: x(t), label: formatSeconds(t) })),
    span,
    axisY: AXIS - 6
  };
}

const SVG = 'http://www.w3.org/2000/svg';

/** ``text`` cut to ``most`` characters, an ellipsis ending it if cut. */
export function shorten(text: string, most: number): string {
  const chars = Array.from(text);
  return chars.length <= most ? text : chars.slice(0, Math.max(1, most - 1)).join('') + '…';
}

export function svgEl(tag: string, attrs: { [key: string]: string | number }, text?: string): SVGElement {
  const node = document.createElementNS(SVG, tag) as SVGElement;
  for (const [key, value] of Object.entries(attrs)) {
    node.setAttribute(key, String(value));
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** The timeline as an SVG element; ``onPick(task, attempt)`` when a bar is clicked. */
export function renderGantt(layout: IGanttLayout, onPick?: (task: string, attempt: number) => void): SVGSVGElement {
  const svg = svgEl('svg', { class: 'nbflow-gantt', width: layout.width, height: layout.height, viewBox: `0 0 ${layout.width} ${layout.height}` }) as SVGSVGElement;
  const defs = svgEl('defs', {});
  const hatch = svgEl('pattern', { id: 'nbflow-gantt-queued', width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' });
  hatch.append(svgEl('rect', { class: 'nbflow-gantt-hatch', width: 2, height: 6 }));
  defs.append(hatch);
  svg.append(defs);
  for (const t of layout.ticks) {
    svg.append(svgEl('line', { class: 'nbflow-gantt-grid', x1: t.x, x2: t.x, y1: layout.axisY + 4, y2: layout.height }));
    svg.append(svgEl('text', { class: 'nbflow-gantt-tick', x: t.x, y: layout.axisY, 'text-anchor': 'middle' }, t.label));
  }
  for (const row of layout.rows) {
    const g = svgEl('g', { class: 'nbflow-gantt-row' });
    g.dataset.task = row.task;
    g.dataset.state = row.state;
    const label = svgEl('text', { class: 'nbflow-gantt-label', x: layout.labelWidth - 6, y: row.y + 15, 'text-anchor': 'end' }, shorten(row.task, Math.floor(layout.labelWidth / 6.5)));
    label.append(svgEl('title', {}, row.task));
    g.append(label);
    if (row.attempts === 0) {
      // a task of the run that never started (up to date, skipped, upstream failed): its state
      g.append(svgEl('text', { class: 'nbflow-gantt-note', x: layout.labelWidth + 4, y: row.y + 15 }, row.state.replace(/_/g, ' ') || 'not started'));
    }
    svg.append(g);
  }
  for (const s of layout.segments) {
    const rect = svgEl('rect', {
      class: `nbflow-gantt-bar nbflow-gantt-${s.kind}`,
      x: s.x,
      y: s.kind === 'kernel' ? s.y + s.height / 4 : s.y,
      width: s.width,
      height: s.kind === 'kernel' ? s.height / 2 : s.height,
      rx: 2,
      fill: s.kind === 'queued' ? 'url(#nbflow-gantt-queued)' : s.fill
    });
    rect.dataset.task = s.task;
    rect.dataset.attempt = String(s.attempt);
    rect.dataset.state = s.state;
    rect.dataset.kind = s.kind;
    rect.append(svgEl('title', {}, s.title));
    if (onPick) {
      rect.addEventListener('click', () => onPick(s.task, s.attempt));
    }
    svg.append(rect);
  }
  return svg;
}
