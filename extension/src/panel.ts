// The Pipeline panel: the DAG with live states, run controls, the chosen task, the history.
// Plain DOM over the model; every action goes through the model (and so the server).
import { bugIcon, expandAllIcon, folderIcon, refreshIcon, runIcon, stopIcon, Toolbar, ToolbarButton } from '@jupyterlab/ui-components';
import type { Message } from '@lumino/messaging';
import { Panel, Widget } from '@lumino/widgets';

import { PipelineModel } from './model';
import { Wire } from './tokens';

export interface IPanelActions {
  /** Open a file (relative to the server's root) in JupyterLab. */
  open(path: string): void;
  /** Write the debug notebook of a failed task, open it and run it up to the failing cell. */
  debug(task: string): void;
  /** Go to a folder (relative to the server's root): the file browser's, which the panel follows. */
  browse?(path: string): void;
}

/** The smallest rendered size of a node's name, in CSS pixels: below it the graph scrolls instead. */
export const MIN_FONT_PX = 11;
/** The largest scale of the graph (its natural size is 4/3 px a point): a small DAG is not blown up. */
const MAX_SCALE = 1.34;

/** A parameter's default as typed in the form: a string literal without its quotes. */
export function shownDefault(source: string): { text: string; isString: boolean } {
  const m = /^(?:[rR])?(['"])(.*)\1$/s.exec(source.trim());
  if (m && !m[2].includes(m[1]) && !m[2].includes('\\')) {
    return { text: m[2], isString: true };
  }
  return { text: source, isString: false };
}

/** A run's start as a local time (its ISO text if it cannot be read). */
function localTime(iso: string): string {
  const t = new Date(iso);
  if (isNaN(t.getTime())) {
    return iso;
  }
  const today = new Date().toDateString() === t.toDateString();
  return today ? t.toLocaleTimeString() : t.toLocaleString();
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: { [key: string]: string } = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'text') {
      node.textContent = value;
    } else {
      node.setAttribute(key, value);
    }
  }
  node.append(...children);
  return node;
}

/**
 * A graph node's task: its `data-task-key`, the name percent-encoded, so any name is read back
 * exactly (the title shows it, but parsing HTML may change its text); null if it cannot be read.
 */
function taskOf(g: Element): string | null {
  const key = g.getAttribute('data-task-key');
  try {
    return key === null ? null : decodeURIComponent(key);
  } catch {
    return null; // not UTF-8: a file name that is not text, which the store cannot hold either
  }
}

function button(label: string, cls: string, onClick: () => void): HTMLButtonElement {
  const b = el('button', { class: `jp-Button nbflow-button ${cls}`, text: label });
  b.addEventListener('click', onClick);
  return b;
}

export class PipelinePanel extends Panel {
  constructor(
    readonly model: PipelineModel,
    readonly actions: IPanelActions
  ) {
    super();
    this.id = 'nbflow-pipeline-panel';
    this.addClass('nbflow-panel');
    this.title.caption = 'nbflow pipeline';
    this._toolbar.addClass('nbflow-toolbar');
    this._toolbar.addItem('run', this._runButton);
    this._toolbar.addItem('stop', this._stopButton);
    this._toolbar.addItem('refresh', new ToolbarButton({ icon: refreshIcon, tooltip: 'Read the folder and its runs again', className: 'nbflow-refresh', onClick: () => void this.model.refresh() }));
    this._toolbar.addItem('fit', this._fitButton);
    this.addWidget(this._toolbar);
    this._body.addClass('nbflow-panel-body');
    this.addWidget(this._body);
    this._body.node.append(this._header, this._controls, this._params, this._message, this._problems, this._graph, this._task, this._history);
    this._controls.append(el('label', { class: 'nbflow-force' }, this._force, ' even if up to date'));
    this._force.type = 'checkbox';
    this._graphSize = new ResizeObserver(() => {
      if (this._graph.clientWidth !== this._graphWidth) {
        this._graphWidth = this._graph.clientWidth; // its height follows the graph's: not a reason
        this.scaleGraph();
      }
    });
    this._graphSize.observe(this._graph);
    model.changed.connect(() => this.render());
    this.render();
  }

  /** The panel's toolbar (Run, Stop, Refresh, Fit): other parts of the extension may add to it. */
  get toolbar(): Toolbar {
    return this._toolbar;
  }

  /** The parameter form's changed values (JSON if they parse, else text, as `-p` reads them). */
  formParams(): { [name: string]: unknown } {
    const params: { [name: string]: unknown } = {};
    for (const input of Array.from(this._params.querySelectorAll('input'))) {
      const value = input.value.trim();
      if (value && value !== input.dataset.default) {
        if (input.dataset.string === 'true') {
          params[input.name] = value; // the default is a string: so is what is typed
          continue;
        }
        try {
          params[input.name] = JSON.parse(value);
        } catch {
          params[input.name] = value;
        }
      }
    }
    return params;
  }

  render(): void {
    const m = this.model;
    const run = m.run;
    this._header.replaceChildren(
      el('div', { class: 'nbflow-title', text: `Pipeline: ${m.path || '/'}` }),
      el('div', { class: 'nbflow-summary', text: run ? `Run ${run.run_id}: ${run.state}${run.duration ? ' in ' + run.duration : ''}` : 'No runs yet.' })
    );
    this._message.textContent = m.message?.text ?? '';
    this._message.className = `nbflow-message${m.message?.error ? ' nbflow-error' : ''}`;
    this._runButton.enabled = !!m.dag?.ok && m.tasks.length > 0;
    this._stopButton.enabled = m.running;
    this._controls.hidden = m.notAPipeline;
    this._task.hidden = m.notAPipeline || !m.dag?.ok;
    this._header.querySelector('.nbflow-summary')?.toggleAttribute('hidden', m.notAPipeline);
    this.renderProblems(m.dag);
    this.renderParams(m.dag);
    this.renderGraph();
    this.renderTask();
    this.renderHistory();
  }

  private renderProblems(dag: Wire.IDag | null): void {
    if (this.model.notAPipeline) {
      this._problems.replaceChildren(this.notAPipeline(this.model.pipelines!));
      return;
    }
    const problems = dag && !dag.ok ? dag.problems : [];
    const note = dag?.ok ? dag.code?.note : null; // tasks in code: listed, not run, until a run
    this._problems.replaceChildren(
      ...(note ? [el('div', { class: 'nbflow-code-note', text: note })] : []),
      ...problems.map(p =>
        el(
          'div',
          { class: 'nbflow-problem' },
          el('span', { text: p.message }),
          ...(p.path ? [button('Open', 'nbflow-open-problem', () => this.actions.open(p.path!))] : [])
        )
      )
    );
  }

  /** "This folder is not a pipeline", and the pipelines below it to choose from. */
  private notAPipeline(found: Wire.IPipelines): HTMLElement {
    const choose = (path: string) => (this.actions.browse ? this.actions.browse(path) : void this.model.setPath(path));
    const choices = found.pipelines.map(p => {
      const b = button(p.name, 'nbflow-pipeline-choice', () => choose(p.path));
      b.title = `Show the pipeline in ${p.path}`;
      b.prepend(folderIcon.element({ tag: 'span', className: 'nbflow-button-icon' }));
      return b;
    });
    return el(
      'div',
      { class: 'nbflow-not-pipeline' },
      el('div', { class: 'nbflow-not-pipeline-title', text: 'This folder is not a pipeline.' }),
      el('div', {
        class: 'nbflow-hint',
        text: choices.length
          ? 'Choose a pipeline below it:'
          : 'No pipeline below it either: a pipeline is a folder of notebooks with a cell tagged "parameters", or with an nbflow.toml. Open one in the file browser.'
      }),
      el('div', { class: 'nbflow-pipeline-choices' }, ...choices)
    );
  }

  private renderParams(dag: Wire.IDag | null): void {
    const declared = dag?.parameters ?? {};
    const key = JSON.stringify(declared);
    if (key === this._paramsKey) {
      return;
    }
    this._paramsKey = key;
    const rows = Object.entries(declared).map(([name, source]) => {
      const shown = shownDefault(source);
      const input = el('input', { name, value: shown.text, 'data-default': shown.text, 'data-string': String(shown.isString), class: 'nbflow-param jp-mod-styled' });
      return el('label', { class: 'nbflow-param-row' }, el('span', { class: 'nbflow-param-name', text: name, title: name }), input);
    });
    this._params.hidden = rows.length === 0;
    this._params.replaceChildren(el('summary', { text: 'Parameters' }), ...rows);
  }

  private renderGraph(): void {
    const dag = this.model.dag;
    const svg = dag?.ok ? dag.svg ?? '' : '';
    if (svg !== this._svg) {
      this._svg = svg;
      this._graph.innerHTML = svg;
      this._nodes = new Map();
      for (const g of Array.from(this._graph.querySelectorAll('g.node'))) {
        const name = taskOf(g);
        if (name === null) {
          continue;
        }
        const texts = g.querySelectorAll('text');
        this._nodes.set(name, {
          g: g as SVGGElement,
          shape: g.querySelector('path, polygon, rect, ellipse'),
          note: texts.length > 1 ? texts[texts.length - 1] : null
        });
        g.addEventListener('click', () => this.model.select(name));
      }
      this.scaleGraph();
    }
    this._graph.hidden = !svg;
    const paint = this.model.paint();
    for (const [name, node] of this._nodes) {
      const [state, colour, note] = paint[name] ?? ['', '#ffffff', ''];
      node.shape?.setAttribute('fill', colour);
      node.shape?.setAttribute('stroke-width', name === this.model.selected ? '3' : '1');
      node.g.classList.toggle('nbflow-blank', !state);
      node.g.classList.toggle('nbflow-selected', name === this.model.selected);
      node.g.dataset.state = state;
      node.g.dataset.task = name;
      if (node.note) {
        node.note.textContent = note || '\u2007';
      }
    }
    if (this.model.selected !== this._scrolledTo) {
      this._scrolledTo = this.model.selected;
      this.scrollToSelected();
    }
  }

  /**
   * Size the graph: to the box's width, but never so small that a name's letters are under
   * MIN_FONT_PX (the box scrolls instead); "fit" shows it whole, however small.
   */
  private scaleGraph(): void {
    const svg = this._graph.querySelector('svg');
    const box = svg?.viewBox?.baseVal;
    if (!svg || !box || !box.width || !box.height) {
      return;
    }
    const width = this._graph.clientWidth - 2;
    if (width <= 0) {
      return; // not shown yet: sized when it is
    }
    const font = parseFloat(this._graph.querySelector('g.node text')?.getAttribute('font-size') ?? '') || 14;
    const readable = MIN_FONT_PX / font;
    const fitted = Math.min(width / box.width, (Math.max(this._graph.clientHeight, 200) - 2) / box.height);
    const scale = this._fit ? Math.min(fitted, MAX_SCALE) : Math.min(Math.max(width / box.width, readable), Math.max(MAX_SCALE, readable));
    svg.style.maxWidth = 'none';
    svg.style.width = `${box.width * scale}px`;
    svg.style.height = `${box.height * scale}px`;
    svg.dataset.scale = String(scale);
  }

  /** Scroll the graph's box (only it) so the chosen node is in view. */
  private scrollToSelected(): void {
    const name = this.model.selected;
    const g = name ? this._nodes.get(name)?.g : undefined;
    if (!g) {
      return;
    }
    const box = this._graph.getBoundingClientRect();
    const node = g.getBoundingClientRect();
    const margin = 16;
    if (node.left < box.left || node.right > box.right) {
      this._graph.scrollLeft += node.left - box.left - Math.max(margin, (box.width - node.width) / 2);
    }
    if (node.top < box.top || node.bottom > box.bottom) {
      this._graph.scrollTop += node.top - box.top - Math.max(margin, (box.height - node.height) / 2);
    }
  }

  private toggleFit(): void {
    this._fit = !this._fit;
    this._fitButton.pressed = this._fit;
    this.scaleGraph();
    this.scrollToSelected();
  }

  private renderTask(): void {
    const m = this.model;
    const name = m.selected;
    const task = name ? m.task(name) : undefined;
    if (!name || !task) {
      this._task.replaceChildren(el('div', { class: 'nbflow-hint', text: 'Choose a task in the graph.' }));
      return;
    }
    const state = m.status?.tasks?.[name];
    this.renderLog();
    const others = m.tasks.map(t => t.name).filter(n => n !== name && !task.upstream.includes(n));
    const pick = el('select', { class: 'nbflow-add-upstream-choice' }, ...others.map(n => el('option', { value: n, text: n })));
    const upstreams = task.upstream.map(up =>
      el('li', {}, el('span', { text: up }), button('×', 'nbflow-remove-upstream', () => void m.removeUpstream(name, up)))
    );
    this._task.replaceChildren(
      el('div', { class: 'nbflow-task-name', text: name }),
      el('div', { class: 'nbflow-task-state', text: state ? `${state.state}${state.note ? ' · ' + state.note : ''} · attempts ${state.attempts}` : 'not in this run' }),
      ...(task.loaded === false ? [el('div', { class: 'nbflow-not-loaded', text: 'Defined in code, not loaded: it runs when the pipeline runs.' })] : []),
      ...(state?.error ? [el('div', { class: 'nbflow-error', text: state.error })] : []),
      el(
        'div',
        { class: 'nbflow-task-actions' },
        ...(task.path ? [button('Open notebook', 'nbflow-open', () => this.actions.open(task.path!))] : []),
        ...(state?.output_notebook ? [button('Open executed', 'nbflow-open-executed', () => this.actions.open(state.output_notebook!))] : []),
        button('Run with upstreams', 'nbflow-run-task', () => void m.runPipeline(this.formParams(), [name])),
        button('Show log', 'nbflow-show-log', () => void this.model.showLog(name)),
        ...(m.canDebug(name) ? [this.debugButton(name)] : [])
      ),
      el('div', { class: 'nbflow-upstreams-title', text: 'Upstreams' }),
      el('ul', { class: 'nbflow-upstreams' }, ...upstreams),
      el('div', { class: 'nbflow-add-upstream' }, pick, button('Add', 'nbflow-add-upstream-button', () => pick.value && void m.addUpstream(name, pick.value))),
      this._logNote,
      this._log
    );
  }

  /** The shown log (the model follows it): the text, or a calm note when the task did not run. */
  private renderLog(): void {
    const view = this.model.logView;
    const shown = view && view.task === this.model.selected ? view : null;
    this._logNote.textContent = shown?.note ?? '';
    const parts = shown && !shown.note ? [shown.text || (shown.complete ? '(no output)' : '')] : [];
    if (shown?.traceback) {
      parts.push('\n' + shown.traceback);
    }
    const text = parts.join('\n');
    if (text !== this._log.textContent) {
      const atEnd = this._log.scrollHeight - this._log.scrollTop - this._log.clientHeight < 24;
      if (shown && text.startsWith(this._log.textContent ?? '') && this._log.firstChild) {
        this._log.append(text.slice((this._log.textContent ?? '').length)); // only what is new
      } else {
        this._log.textContent = text;
      }
      if (atEnd || !this._log.dataset.task) {
        this._log.scrollTop = this._log.scrollHeight;
      }
    }
    if (shown) {
      this._log.dataset.task = shown.task;
      this._log.dataset.complete = String(shown.complete);
    } else {
      delete this._log.dataset.task;
    }
  }

  private debugButton(name: string): HTMLButtonElement {
    const b = button('Debug', 'jp-mod-styled nbflow-debug', () => this.actions.debug(name));
    b.title = 'Open a notebook that reproduces the failed attempt, run up to the failing cell';
    b.prepend(bugIcon.element({ tag: 'span', className: 'nbflow-button-icon' }));
    return b;
  }

  dispose(): void {
    this._graphSize.disconnect();
    super.dispose();
  }

  // The model asks the server anything only while the panel is shown (a sidebar tab that is
  // open); closing the sidebar or choosing another tab hides it.
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

  private renderHistory(): void {
    const runs = this.model.status?.runs ?? [];
    const colours = this.model.status?.colours ?? {};
    const rows = runs.map(r => {
      const row = el(
        'li',
        { class: `nbflow-history-run${r.run_id === this.model.shownRun ? ' nbflow-shown' : ''}`, title: `run ${r.run_id}`, 'data-run': r.run_id, 'data-state': r.state },
        el('span', { class: 'nbflow-dot', style: `background: ${colours[r.state] ?? 'var(--jp-border-color1)'}` }),
        el('span', { class: 'nbflow-history-time', text: localTime(r.started_at) }),
        el('span', { class: 'nbflow-history-state', text: r.state.replace(/_/g, ' ') }),
        el('span', { class: 'nbflow-history-duration', text: r.duration ?? '…' })
      );
      row.addEventListener('click', () => void this.model.showRun(r.run_id));
      return row;
    });
    const latest = el('li', { class: `nbflow-history-run nbflow-history-latest${this.model.shownRun === null ? ' nbflow-shown' : ''}`, text: 'Latest run (follow)' });
    latest.addEventListener('click', () => void this.model.showRun(null));
    this._history.hidden = this.model.notAPipeline;
    this._history.replaceChildren(el('div', { class: 'nbflow-history-title', text: 'Run history' }), el('ul', {}, latest, ...rows));
  }

  private _header = el('div', { class: 'nbflow-header' });
  private _controls = el('div', { class: 'nbflow-controls' });
  private _force = el('input');
  private _params = el('details', { class: 'nbflow-params' });
  private _paramsKey = '';
  private _message = el('div', { class: 'nbflow-message' });
  private _problems = el('div', { class: 'nbflow-problems' });
  private _graph = el('div', { class: 'nbflow-panel-graph' });
  private _svg = '';
  private _nodes = new Map<string, { g: SVGGElement; shape: Element | null; note: Element | null }>();
  private _task = el('div', { class: 'nbflow-task' });
  private _log = el('pre', { class: 'nbflow-log' });
  private _logNote = el('div', { class: 'nbflow-log-note' });
  private _history = el('div', { class: 'nbflow-history' });
  private _toolbar = new Toolbar();
  private _body = new Widget();
  private _runButton = new ToolbarButton({ icon: runIcon, label: 'Run', tooltip: 'Run the pipeline', className: 'nbflow-run', onClick: () => void this.model.runPipeline(this.formParams(), undefined, this._force.checked) });
  private _stopButton = new ToolbarButton({ icon: stopIcon, label: 'Stop', tooltip: 'Stop the run going on', className: 'nbflow-stop', enabled: false, onClick: () => void this.model.stop() });
  private _fitButton = new ToolbarButton({ icon: expandAllIcon, label: 'Fit', tooltip: 'Show the whole graph (else names stay readable and the graph scrolls)', className: 'nbflow-fit', onClick: () => this.toggleFit() });
  private _fit = false;
  private _scrolledTo: string | null = null;
  private _graphSize: ResizeObserver;
  private _graphWidth = 0;
}
