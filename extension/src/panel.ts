// The Pipeline panel: the DAG with live states, run controls, the chosen task, the history.
// Plain DOM over the model; every action goes through the model (and so the server).
import { bugIcon } from '@jupyterlab/ui-components';
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { PipelineModel } from './model';
import { Wire } from './tokens';

export interface IPanelActions {
  /** Open a file (relative to the server's root) in JupyterLab. */
  open(path: string): void;
  /** Write the debug notebook of a failed task, open it and run it up to the failing cell. */
  debug(task: string): void;
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

export class PipelinePanel extends Widget {
  constructor(
    readonly model: PipelineModel,
    readonly actions: IPanelActions
  ) {
    super();
    this.id = 'nbflow-pipeline-panel';
    this.addClass('nbflow-panel');
    this.title.caption = 'nbflow pipeline';
    this.node.append(this._header, this._controls, this._params, this._message, this._problems, this._graph, this._task, this._history);
    this._controls.append(
      button('Run', 'nbflow-run', () => void this.model.runPipeline(this.formParams(), undefined, this._force.checked)),
      button('Stop', 'nbflow-stop', () => void this.model.stop()),
      button('Refresh', 'nbflow-refresh', () => void this.model.refresh()),
      el('label', { class: 'nbflow-force' }, this._force, ' even if up to date')
    );
    this._force.type = 'checkbox';
    // follow the shown log while its task runs, and read it once more when the task ends
    this._logTimer = setInterval(() => {
      const task = this._log.dataset.task;
      const state = task ? this.model.status?.tasks?.[task]?.state : undefined;
      if (task && !this._logBusy && (state === 'running' || state !== this._log.dataset.state)) {
        void this.showLog(task);
      }
    }, 1000);
    model.changed.connect(() => this.render());
    this.render();
  }

  /** The parameter form's changed values (JSON if they parse, else text, as `-p` reads them). */
  formParams(): { [name: string]: unknown } {
    const params: { [name: string]: unknown } = {};
    for (const input of Array.from(this._params.querySelectorAll('input'))) {
      const value = input.value.trim();
      if (value && value !== input.dataset.default) {
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
    this.renderProblems(m.dag);
    this.renderParams(m.dag);
    this.renderGraph();
    this.renderTask();
    this.renderHistory();
  }

  private renderProblems(dag: Wire.IDag | null): void {
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

  private renderParams(dag: Wire.IDag | null): void {
    const declared = dag?.parameters ?? {};
    const key = JSON.stringify(declared);
    if (key === this._paramsKey) {
      return;
    }
    this._paramsKey = key;
    const rows = Object.entries(declared).map(([name, value]) => {
      const input = el('input', { name, value, 'data-default': value, class: 'nbflow-param' });
      return el('label', { class: 'nbflow-param-row' }, el('span', { text: name }), input);
    });
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
      const el2 = this._graph.querySelector('svg');
      if (el2) {
        el2.style.maxWidth = '100%';
        el2.style.height = 'auto';
      }
    }
    const paint = this.model.paint();
    for (const [name, node] of this._nodes) {
      const [state, colour, note] = paint[name] ?? ['', '#ffffff', ''];
      node.shape?.setAttribute('fill', colour);
      node.shape?.setAttribute('stroke-width', name === this.model.selected ? '3' : '1');
      node.g.dataset.state = state;
      node.g.dataset.task = name;
      if (node.note) {
        node.note.textContent = note || '\u2007';
      }
    }
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
    if (this._log.dataset.task !== name) {
      this._log.textContent = ''; // another task's log is not this one's
      delete this._log.dataset.task;
    }
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
        button('Show log', 'nbflow-show-log', () => void this.showLog(name)),
        ...(m.canDebug(name) ? [this.debugButton(name)] : [])
      ),
      el('div', { class: 'nbflow-upstreams-title', text: 'Upstreams' }),
      el('ul', { class: 'nbflow-upstreams' }, ...upstreams),
      el('div', { class: 'nbflow-add-upstream' }, pick, button('Add', 'nbflow-add-upstream-button', () => pick.value && void m.addUpstream(name, pick.value))),
      this._log
    );
  }

  private debugButton(name: string): HTMLButtonElement {
    const b = button('Debug', 'jp-mod-styled nbflow-debug', () => this.actions.debug(name));
    b.title = 'Open a notebook that reproduces the failed attempt, run up to the failing cell';
    b.prepend(bugIcon.element({ tag: 'span', className: 'nbflow-button-icon' }));
    return b;
  }

  dispose(): void {
    clearInterval(this._logTimer);
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

  private async showLog(name: string): Promise<void> {
    this._logBusy = true;
    const log = await this.model.log(name).finally(() => (this._logBusy = false));
    if (!log || this.model.selected !== name) {
      return;
    }
    const parts = [log.text || '(no output)'];
    if (log.traceback) {
      parts.push('\n' + log.traceback);
    }
    this._log.textContent = parts.join('\n');
    this._log.dataset.task = name;
    this._log.dataset.state = this.model.status?.tasks?.[name]?.state ?? '';
    this._log.scrollTop = this._log.scrollHeight;
  }

  private renderHistory(): void {
    const runs = this.model.status?.runs ?? [];
    const rows = runs.map(r => {
      const row = el('li', { class: `nbflow-history-run${r.run_id === this.model.shownRun ? ' nbflow-shown' : ''}`, text: `${r.run_id}  ${r.state}  ${r.duration ?? '…'}` });
      row.addEventListener('click', () => void this.model.showRun(r.run_id));
      return row;
    });
    const latest = el('li', { class: `nbflow-history-run${this.model.shownRun === null ? ' nbflow-shown' : ''}`, text: 'latest run (follow)' });
    latest.addEventListener('click', () => void this.model.showRun(null));
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
  private _logTimer: ReturnType<typeof setInterval>;
  private _logBusy = false;
  private _history = el('div', { class: 'nbflow-history' });
}
