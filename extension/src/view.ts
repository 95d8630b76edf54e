// The pipeline view in the main area: the graph full size with live states, the grid of recent
// runs x tasks, the chosen attempt (state, error, live log), the chosen run's Gantt timeline and
// the chosen task's duration trend. Plain DOM; names and messages only as text nodes.
import { JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget } from '@jupyterlab/apputils';
import { refreshIcon, runIcon, stopIcon, ToolbarButton, treeViewIcon } from '@jupyterlab/ui-components';
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { LogFollower } from './follow';
import { formatSeconds, ganttLayout, renderGantt, stateColour } from './gantt';
import { IGridCell, renderGrid } from './grid';
import { requestAPI, serverApi } from './handler';
import { PipelineModel } from './model';
import { Wire } from './tokens';
import { renderTrend, trendLayout } from './trend';

import '../style/view.css'; // with the view's chunk: fetched when the view is first opened

/** The monitoring routes (nbflow/server): grid, timeline, trend, and one attempt's log from an offset. */
export const monitorApi = {
  grid: (path: string, limit = 25) => requestAPI<Wire.IGrid>('grid', {}, { path, limit: String(limit) }),
  timeline: (path: string, run: string | null) => requestAPI<Wire.ITimeline>('timeline', {}, { path, ...(run ? { run } : {}) }),
  trend: (path: string, task: string, limit = 50) => requestAPI<Wire.ITrend>('trend', {}, { path, task, limit: String(limit) }),
  log: (path: string, task: string, run: string, attempt: number, offset: number) =>
    requestAPI<Wire.ILog>('log', {}, { path, task, run, attempt: String(attempt), offset: String(offset) })
};

/** Live log following, at the panel's update cadence. */
const LOG_MS = 300;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls: string, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = cls;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function section(title: string, cls: string, ...body: Node[]): HTMLElement {
  const s = el('section', `nbflow-view-section ${cls}`);
  s.append(el('h3', 'nbflow-view-heading', title), ...body);
  return s;
}

function decodeKey(g: Element): string | null {
  const key = g.getAttribute('data-task-key');
  try {
    return key === null ? null : decodeURIComponent(key);
  } catch {
    return null;
  }
}

export interface IViewActions {
  /** Open a file (relative to the server's root) in JupyterLab. */
  open(path: string): void;
}

/** The attempt shown: a task's attempt in a run. */
interface IChosen {
  run: string;
  task: string;
  attempt: number;
}

export class PipelineView extends Widget {
  constructor(
    readonly path: string,
    readonly actions: IViewActions
  ) {
    super();
    this.addClass('nbflow-view');
    this.model = new PipelineModel(serverApi);
    this.node.append(
      this._header,
      this._message,
      el('div', 'nbflow-view-columns')
    );
    const columns = this.node.lastChild as HTMLElement;
    const left = el('div', 'nbflow-view-column');
    const right = el('div', 'nbflow-view-column');
    columns.append(left, right);
    left.append(
      section('Graph', 'nbflow-view-graph-section', this._graph),
      section('Timeline', 'nbflow-view-gantt-section', this._ganttTitle, this._gantt, this.legend())
    );
    right.append(
      section('Recent runs', 'nbflow-view-grid-section', this._grid),
      section('Attempt', 'nbflow-view-attempt-section', this._attempt, this._log),
      section('Duration trend', 'nbflow-view-trend-section', this._trendTitle, this._trend)
    );
    this._attempt.append(el('div', 'nbflow-view-hint', 'Choose a cell of the grid, or a bar of the timeline.'));
    this.model.changed.connect(() => this.onModel());
    void this.model.setPath(path);
    // an attempt still running extends its bar as time passes
    this._clock = setInterval(() => this._timeline?.state === 'running' && this.drawGantt(), 1000);
  }

  readonly model: PipelineModel;

  /** Whether the graph is scaled to fit its box (else drawn at its own size). */
  get fitGraph(): boolean {
    return this._fit;
  }

  set fitGraph(value: boolean) {
    this._fit = value;
    this.sizeGraph();
  }

  /** The graph fitted to its box (at most 1.5 times its own size), or at its own size. */
  private sizeGraph(): void {
    const svg = this._graph.querySelector('svg');
    const box = svg?.viewBox?.baseVal;
    if (!svg || !box || !box.width || !box.height) {
      return;
    }
    const room = { w: this._graph.clientWidth - 4, h: Math.max(200, window.innerHeight * 0.55) };
    const scale = this._fit && room.w > 0 ? Math.min(1.5, room.w / box.width, room.h / box.height) : 1;
    svg.style.width = `${box.width * scale}px`;
    svg.style.height = `${box.height * scale}px`;
  }

  protected onResize(msg: Widget.ResizeMessage): void {
    super.onResize(msg);
    this.sizeGraph();
  }

  async refresh(): Promise<void> {
    await this.model.refresh();
    await this.reload();
  }

  /** Choose one attempt: the grid, the timeline and the trend follow it; its log is followed. */
  async choose(chosen: IChosen): Promise<void> {
    const runChanged = chosen.run !== this._chosen?.run;
    const taskChanged = chosen.task !== this._chosen?.task;
    this._chosen = chosen;
    this.drawGrid();
    this.followLog();
    await Promise.all([runChanged ? this.loadTimeline() : this.drawGantt(), taskChanged ? this.loadTrend() : undefined]);
  }

  dispose(): void {
    clearInterval(this._clock);
    this.stopLog();
    this.model.deactivate();
    super.dispose();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      void this.model.activate();
    }
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.model.activate();
  }

  protected onBeforeHide(msg: Message): void {
    this.model.deactivate();
    super.onBeforeHide(msg);
  }

  protected onBeforeDetach(msg: Message): void {
    this.model.deactivate();
    super.onBeforeDetach(msg);
  }

  /** The model's status changed (its own poll, ~0.25 s while a run goes on): repaint, reload what moved. */
  private onModel(): void {
    const m = this.model;
    const run = m.run;
    this._header.replaceChildren(
      el('span', 'nbflow-view-title', `Pipeline: ${this.path || '/'}`),
      el('span', 'nbflow-view-summary', run ? `Run ${run.run_id}: ${run.state}${run.duration ? ' in ' + run.duration : ''}` : 'No runs yet.')
    );
    this._message.textContent = m.message?.text ?? '';
    this._message.classList.toggle('nbflow-error', !!m.message?.error);
    this.drawGraph();
    const token = m.status?.token ?? '';
    if (token !== this._token) {
      this._token = token;
      void this.reload();
    }
  }

  /** Ask the grid, the chosen run's timeline and the chosen task's trend again (one at a time). */
  private async reload(): Promise<void> {
    if (this._reloading) {
      this._again = true;
      return;
    }
    this._reloading = true;
    try {
      do {
        this._again = false;
        await this.loadGrid();
        await Promise.all([this.loadTimeline(), this.loadTrend()]);
      } while (this._again && !this.isDisposed);
    } finally {
      this._reloading = false;
    }
  }

  private async guard<T>(work: () => Promise<T>): Promise<T | null> {
    try {
      return await work();
    } catch (error) {
      this._message.textContent = error instanceof Error ? error.message : String(error);
      this._message.classList.add('nbflow-error');
      return null;
    }
  }

  private legend(): HTMLElement {
    const box = el('div', 'nbflow-gantt-legend');
    for (const [cls, label] of [
      ['nbflow-legend-queued', 'queued'],
      ['nbflow-legend-kernel', 'kernel start'],
      ['nbflow-legend-running', 'running / ran']
    ]) {
      const item = el('span', 'nbflow-legend-item');
      item.append(el('span', `nbflow-legend-swatch ${cls}`), label);
      box.append(item);
    }
    return box;
  }

  private drawGraph(): void {
    const dag = this.model.dag;
    const svg = dag?.ok ? (dag.svg ?? '') : '';
    if (svg !== this._svg) {
      this._svg = svg;
      this._graph.innerHTML = svg; // the server's SVG: every name in it escaped by its XML serializer
      this._nodes = new Map();
      for (const g of Array.from(this._graph.querySelectorAll('g.node'))) {
        const name = decodeKey(g);
        if (name !== null) {
          this._nodes.set(name, { g: g as SVGGElement, shape: g.querySelector('path, polygon, rect, ellipse') });
          g.addEventListener('click', () => this.chooseTask(name));
        }
      }
      this.sizeGraph();
      if (!dag?.ok && dag) {
        this._graph.replaceChildren(...dag.problems.map(p => el('div', 'nbflow-error', p.message)));
      }
    }
    const paint = this.model.paint();
    for (const [name, node] of this._nodes) {
      const [state, colour] = paint[name] ?? ['', stateColour(null)];
      node.shape?.setAttribute('fill', colour);
      node.g.dataset.state = state;
      node.g.dataset.task = name;
      node.g.classList.toggle('nbflow-chosen', name === this._chosen?.task);
    }
  }

  /** A task chosen in the graph: its latest attempt in the run shown (or the latest run it is in). */
  private chooseTask(task: string): void {
    const grid = this._grid_data;
    const runs = grid?.runs ?? [];
    const preferred = this._chosen?.run;
    const run = [preferred, ...runs.map(r => r.run_id)].find(r => r && grid?.cells?.[r]?.[task]);
    if (run) {
      void this.choose({ run, task, attempt: grid!.cells[run][task].attempts });
    }
  }

  private async loadGrid(): Promise<void> {
    const grid = await this.guard(() => monitorApi.grid(this.path));
    if (!grid) {
      return;
    }
    this._grid_data = grid;
    this.drawGrid();
  }

  private drawGrid(): void {
    const grid = this._grid_data;
    if (!grid) {
      return;
    }
    if (!grid.runs.length) {
      this._grid.replaceChildren(el('div', 'nbflow-view-hint', 'No runs yet: run the pipeline (the toolbar’s run button).'));
      return;
    }
    const chosen = { run: this.shownRun(), task: this._chosen?.task ?? null };
    this._grid.replaceChildren(
      renderGrid(grid, chosen, {
        run: runId => {
          this._pinnedRun = runId;
          void this.loadTimeline();
          this.drawGrid();
        },
        cell: (c: IGridCell) => {
          this._pinnedRun = c.run_id;
          void this.choose({ run: c.run_id, task: c.task, attempt: c.attempts });
        }
      })
    );
  }

  /** The run whose timeline is shown: the one chosen, else the latest. */
  private shownRun(): string | null {
    return this._pinnedRun ?? this._chosen?.run ?? this._grid_data?.runs[0]?.run_id ?? null;
  }

  private async loadTimeline(): Promise<void> {
    const run = this.shownRun();
    if (run === null) {
      return;
    }
    const tl = await this.guard(() => monitorApi.timeline(this.path, run));
    if (tl && run === this.shownRun()) {
      this._timeline = tl;
      this.drawGantt();
    }
  }

  private drawGantt(): void {
    const tl = this._timeline;
    if (!tl) {
      return;
    }
    const started = Date.parse(tl.started_at);
    const now = tl.state === 'running' && !isNaN(started) ? (Date.now() - started) / 1000 : 0;
    const width = Math.max(400, this._gantt.clientWidth || 700);
    this._ganttTitle.textContent = `Run ${tl.run_id}: ${tl.state} · ${formatSeconds(tl.duration_s ?? now)} · ${tl.started_at}`;
    const svg = renderGantt(ganttLayout(tl, { width, now }), (task, attempt) => void this.choose({ run: tl.run_id, task, attempt }));
    for (const bar of Array.from(svg.querySelectorAll('.nbflow-gantt-bar'))) {
      const b = bar as SVGElement;
      b.classList.toggle('nbflow-chosen', b.dataset.task === this._chosen?.task && b.dataset.attempt === String(this._chosen?.attempt) && tl.run_id === this._chosen?.run);
    }
    this._gantt.replaceChildren(svg);
  }

  private async loadTrend(): Promise<void> {
    const task = this._chosen?.task;
    if (!task) {
      return;
    }
    const trend = await this.guard(() => monitorApi.trend(this.path, task));
    if (!trend || task !== this._chosen?.task) {
      return;
    }
    this._trendTitle.textContent = `${task}: ${trend.points.length} attempt${trend.points.length === 1 ? '' : 's'}, oldest first`;
    const width = Math.max(240, this._trend.clientWidth || 360);
    this._trend.replaceChildren(
      renderTrend(trendLayout(trend, width, 120), (run, attempt) => {
        this._pinnedRun = run;
        void this.choose({ run, task, attempt });
      })
    );
  }

  private stopLog(): void {
    if (this._logTimer !== null) {
      clearTimeout(this._logTimer);
      this._logTimer = null;
    }
    this._follower = null;
  }

  /** Show the chosen attempt and follow its log (only what is new each time) until it ends. */
  private followLog(): void {
    this.stopLog();
    const chosen = this._chosen;
    if (!chosen) {
      return;
    }
    const follower = new LogFollower(offset => monitorApi.log(this.path, chosen.task, chosen.run, chosen.attempt, offset));
    this._follower = follower;
    this._log.textContent = '';
    this.drawAttempt();
    const tick = async () => {
      const changed = await this.guard(() => follower.tick());
      if (follower !== this._follower) {
        return;
      }
      if (changed) {
        const atEnd = this._log.scrollTop + this._log.clientHeight >= this._log.scrollHeight - 4;
        this._log.textContent = follower.text + (follower.last?.traceback ? '\n' + follower.last.traceback : '');
        if (atEnd) {
          this._log.scrollTop = this._log.scrollHeight;
        }
        this.drawAttempt();
      }
      if (!follower.done && changed !== null) {
        this._logTimer = setTimeout(() => void tick(), LOG_MS);
      }
    };
    void tick();
  }

  private drawAttempt(): void {
    const chosen = this._chosen;
    if (!chosen) {
      return;
    }
    const log = this._follower?.last;
    const bar = this._timeline?.run_id === chosen.run ? this._timeline.bars.find(b => b.task === chosen.task && b.attempt === chosen.attempt) : undefined;
    const cell = this._grid_data?.cells?.[chosen.run]?.[chosen.task];
    const state = log?.state ?? bar?.state ?? cell?.state ?? '';
    const duration = bar ? (bar.end_s === null ? null : bar.end_s - bar.start_s) : (cell?.duration_s ?? null);
    const head = el('div', 'nbflow-view-attempt-head');
    const swatch = el('span', 'nbflow-view-swatch');
    swatch.style.background = stateColour(state);
    head.append(swatch, el('span', 'nbflow-view-attempt-name', chosen.task), el('span', 'nbflow-view-attempt-meta', `run ${chosen.run} · attempt ${chosen.attempt} · ${state || '…'} · ${formatSeconds(duration)}`));
    const parts: Node[] = [head];
    if (log?.error) {
      parts.push(el('div', 'nbflow-error nbflow-view-attempt-error', log.error));
    }
    const executed = log?.output_notebook;
    if (executed) {
      const open = el('button', 'jp-Button jp-mod-styled nbflow-view-open-executed', 'Open executed notebook');
      open.addEventListener('click', () => this.actions.open(executed));
      parts.push(open);
    }
    this._attempt.replaceChildren(...parts);
    this._attempt.dataset.task = chosen.task;
    this._attempt.dataset.run = chosen.run;
    this._attempt.dataset.attempt = String(chosen.attempt);
    this._attempt.dataset.state = state;
  }

  private _header = el('div', 'nbflow-view-header');
  private _message = el('div', 'nbflow-message');
  private _graph = el('div', 'nbflow-view-graph');
  private _fit = true;
  private _svg = '';
  private _nodes = new Map<string, { g: SVGGElement; shape: Element | null }>();
  private _grid = el('div', 'nbflow-view-grid');
  private _grid_data: Wire.IGrid | null = null;
  private _ganttTitle = el('div', 'nbflow-view-subtitle');
  private _gantt = el('div', 'nbflow-view-gantt');
  private _timeline: Wire.ITimeline | null = null;
  private _trendTitle = el('div', 'nbflow-view-subtitle', 'Choose a task to see its durations across runs.');
  private _trend = el('div', 'nbflow-view-trend');
  private _attempt = el('div', 'nbflow-view-attempt');
  private _log = el('pre', 'nbflow-view-log');
  private _chosen: IChosen | null = null;
  private _pinnedRun: string | null = null;
  private _token = '';
  private _reloading = false;
  private _again = false;
  private _follower: LogFollower | null = null;
  private _logTimer: ReturnType<typeof setTimeout> | null = null;
  private _clock: ReturnType<typeof setInterval>;
}

/** The view in a main-area tab with JupyterLab's toolbar: refresh, run, stop, fit the graph. */
export function createPipelineView(path: string, actions: IViewActions): MainAreaWidget<PipelineView> {
  const content = new PipelineView(path, actions);
  const widget = new MainAreaWidget({ content });
  widget.id = `nbflow-view-${encodeURIComponent(path || '/')}`;
  widget.addClass('nbflow-view-widget');
  widget.title.label = `Pipeline: ${path ? path.split('/').pop() : '/'}`;
  widget.title.caption = `nbflow pipeline ${path || '/'}`;
  widget.title.icon = treeViewIcon;
  widget.title.closable = true;
  const tb = widget.toolbar;
  tb.addItem('refresh', new ToolbarButton({ icon: refreshIcon, tooltip: 'Refresh', className: 'nbflow-view-refresh', onClick: () => void content.refresh() }));
  tb.addItem('run', new ToolbarButton({ icon: runIcon, tooltip: 'Run the pipeline', className: 'nbflow-view-run', onClick: () => void content.model.runPipeline() }));
  tb.addItem('stop', new ToolbarButton({ icon: stopIcon, tooltip: 'Stop the run', className: 'nbflow-view-stop', onClick: () => void content.model.stop() }));
  const fit = new ToolbarButton({
    label: 'Fit graph',
    tooltip: 'Scale the graph to its box, or draw it at its own size',
    className: 'nbflow-view-fit',
    pressed: true,
    onClick: () => {
      content.fitGraph = !content.fitGraph;
      fit.pressed = content.fitGraph;
    }
  });
  tb.addItem('fit', fit);
  return widget;
}

const openViews = new Map<string, MainAreaWidget<PipelineView>>();

/** Show the view of the pipeline in ``path`` (relative to the server's root): its tab if open, else a new one. */
export function openPipelineView(app: JupyterFrontEnd, path: string): MainAreaWidget<PipelineView> {
  let widget = openViews.get(path);
  if (!widget || widget.isDisposed) {
    widget = createPipelineView(path, { open: file => void app.commands.execute('docmanager:open', { path: file }) });
    openViews.set(path, widget);
    app.shell.add(widget, 'main');
  }
  app.shell.activateById(widget.id);
  return widget;
}
