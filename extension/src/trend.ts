// A task's duration across runs: one bar per attempt, oldest left, coloured by its state.
// Pure layout (tested in node) and its SVG, built with DOM calls only.
import { formatSeconds, niceStep, stateColour, svgEl } from './gantt';
import { Wire } from './tokens';

export interface ITrendBar {
  run_id: string;
  attempt: number;
  state: string;
  x: number;
  y: number;
  width: number;
  height: number;
  fill: string;
  title: string;
}

export interface ITrendLayout {
  width: number;
  height: number;
  bars: ITrendBar[];
  /** the value of the top gridline, in seconds, and its label */
  max: number;
  maxLabel: string;
  baseY: number;
}

/** Bars scaled to the longest attempt (rounded up to a nice value); unknown durations are 0. */
export function trendLayout(trend: Wire.ITrend, width = 360, height = 120): ITrendLayout {
  const points = trend.points ?? [];
  const longest = Math.max(0, ...points.map(p => p.duration_s ?? 0));
  const step = niceStep(longest, 4);
  const max = longest > 0 ? Math.ceil(longest / step - 1e-9) * step : 1;
  const left = 44;
  const baseY = height - 14;
  const plotH = baseY - 8;
  const slot = points.length ? (width - left - 4) / points.length : 0;
  const bars = points.map((p, i) => {
    const h = ((p.duration_s ?? 0) / max) * plotH;
    return {
      run_id: p.run_id,
      attempt: p.attempt,
      state: p.state,
      x: left + i * slot + slot * 0.15,
      y: baseY - h,
      width: Math.max(1, slot * 0.7),
      height: h,
      fill: stateColour(p.state),
      title: `${p.run_id} · attempt ${p.attempt} · ${p.state} · ${formatSeconds(p.duration_s)}`
    };
  });
  return { width, height, bars, max, maxLabel: formatSeconds(max), baseY };
}

export function renderTrend(layout: ITrendLayout, onPick?: (runId: string, attempt: number) => void): SVGSVGElement {
  const { width, height, baseY } = layout;
  const svg = svgEl('svg', { class: 'nbflow-trend', width, height, viewBox: `0 0 ${width} ${height}` }) as SVGSVGElement;
  svg.append(
    svgEl('line', { class: 'nbflow-gantt-grid', x1: 40, x2: width, y1: 8, y2: 8 }),
    svgEl('line', { class: 'nbflow-gantt-axis', x1: 40, x2: width, y1: baseY, y2: baseY }),
    svgEl('text', { class: 'nbflow-gantt-tick', x: 36, y: 12, 'text-anchor': 'end' }, layout.maxLabel),
    svgEl('text', { class: 'nbflow-gantt-tick', x: 36, y: baseY, 'text-anchor': 'end' }, '0')
  );
  for (const b of layout.bars) {
    const rect = svgEl('rect', { class: 'nbflow-trend-bar', x: b.x, y: b.y, width: b.width, height: Math.max(b.height, 1), fill: b.fill });
    rect.dataset.run = b.run_id;
    rect.dataset.attempt = String(b.attempt);
    rect.dataset.state = b.state;
    rect.append(svgEl('title', {}, b.title));
    if (onPick) {
      rect.addEventListener('click', () => onPick(b.run_id, b.attempt));
    }
    svg.append(rect);
  }
  return svg;
}
