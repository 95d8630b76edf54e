// The panel's state: the folder's DAG, the run shown and its tasks' states, kept fresh by
// polling the server with a "changed since" token (an unchanged store costs a few stat calls).
// Only while the panel is shown (active) does it follow the file browser's folder and ask the
// server anything: browsing folders with the panel closed sends nbflow no request.
import { ISignal, Signal } from '@lumino/signaling';

import { IApi, NbflowResponseError, Wire } from './tokens';

export type Paint = { [task: string]: [state: string, colour: string, note: string] };

/** The log shown in the panel: followed while its attempt runs, only new text asked for. */
export interface ILogView {
  task: string;
  text: string;
  traceback: string | null;
  /** a calm note instead of a log: the task did not run in this run (up to date, upstream failed) */
  note: string | null;
  /** where the text read so far ends, as the server counts (null: the server does not follow) */
  offset: number | null;
  attempt: number | null;
  runId: string | null;
  /** the attempt ended: nothing more is asked until the task's state changes */
  complete: boolean;
  /** the task's state when the log was last read */
  state: string;
}

/** Task states in which a log may still grow (or an attempt may yet start). */
const LIVE_STATES = new Set(['running', 'pending', 'up_for_retry', 'queued', 'scheduled']);

/** Why a task in a run has no log, when it was never meant to run; null if it should have one. */
export function noLogNote(state: Wire.ITaskState | undefined): string | null {
  if (!state) {
    return 'not in this run: it did not run';
  }
  if (state.state === 'up_to_date') {
    const from = /run (\S+)/.exec(state.reason ?? '');
    return `up to date: reused from ${from ? 'run ' + from[1] : 'an earlier run'}, nothing ran`;
  }
  if (state.state === 'upstream_failed') {
    return 'not run: an upstream failed';
  }
  if (state.attempts === 0 && (state.state === 'pending' || state.state === 'skipped' || state.state === 'interrupted')) {
    return state.state === 'pending' ? 'waiting: it has not started yet' : `not run: ${state.state}`;
  }
  return null;
}

export class PipelineModel {
  constructor(
    readonly api: IApi,
    readonly pollMs = 1000
  ) {}

  path: string | null = null;
  dag: Wire.IDag | null = null;
  status: Wire.IStatus | null = null;
  /** The run chosen in the history; null follows the latest. */
  shownRun: string | null = null;
  selected: string | null = null;
  message: { text: string; error: boolean } | null = null;
  /** The folder's own standing and the pipelines below it, asked when its DAG shows no pipeline. */
  pipelines: Wire.IPipelines | null = null;
  /** The log shown, if any (see showLog). */
  logView: ILogView | null = null;

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Emits true when the panel is shown (the model starts asking the server), false when hidden. */
  get activeChanged(): ISignal<this, boolean> {
    return this._activeChanged;
  }

  /** Whether the panel is shown: only then does the model follow the file browser and poll. */
  get active(): boolean {
    return this._active;
  }

  /** The file browser's folder changed: shown at once while active, else when the panel is shown. */
  async follow(path: string): Promise<void> {
    this._followed = path;
    if (this._active) {
      await this.setPath(path);
    }
  }

  /** The panel is shown: show the folder the file browser is in (asked afresh), and poll. */
  async activate(): Promise<void> {
    if (this._active) {
      return;
    }
    this._active = true;
    this._activeChanged.emit(true);
    this.start();
    const path = this._followed ?? this.path;
    if (path === null) {
      return;
    }
    if (path === this.path) {
      await this.refresh();
    } else {
      await this.setPath(path);
    }
  }

  /** The panel is hidden: stop polling; nothing is asked until it is shown again. */
  deactivate(): void {
    if (!this._active) {
      return;
    }
    this._active = false;
    this.dispose();
    this._activeChanged.emit(false);
  }

  get tasks(): Wire.ITask[] {
    return this.dag?.tasks ?? [];
  }

  get run(): Wire.IRun | null {
    return this.status?.run ?? null;
  }

  get running(): boolean {
    return this.run?.state === 'running';
  }

  /** Whether the folder shown is not a pipeline (the server's root, say): the panel offers those below. */
  get notAPipeline(): boolean {
    return this.pipelines !== null && !this.pipelines.pipeline && !(this.dag?.ok && this.tasks.length);
  }

  /** Each task's [state, colour, note] in the run shown; tasks outside it are blank. */
  paint(): Paint {
    const result: Paint = {};
    const states = this.status?.tasks ?? {};
    for (const task of this.tasks) {
      const s = states[task.name];
      result[task.name] = s ? [s.state, s.colour, s.note] : ['', '#ffffff', ''];
    }
    return result;
  }

  task(name: string): Wire.ITask | undefined {
    return this.tasks.find(t => t.name === name);
  }

  /** Show the pipeline in ``path`` (relative to the server's root). */
  async setPath(path: string): Promise<void> {
    if (path === this.path) {
      return;
    }
    this.path = path;
    this.dag = null;
    this.status = null;
    this.shownRun = null;
    this.selected = null;
    this.message = null;
    this.pipelines = null;
    this.logView = null;
    this._startedRun = null;
    await this.refresh();
  }

  async refresh(): Promise<void> {
    const path = this.path;
    if (path === null) {
      return;
    }
    await this.guard(async () => {
      const dag = await this.api.dag(path);
      if (path !== this.path) {
        return; // another folder was chosen meanwhile: this answer is not its
      }
      this.dag = dag;
      this.status = null;
      this.pipelines = null;
      if (!dag.ok || !dag.tasks?.length) {
        const pipelines = await this.api.pipelines(path);
        if (path === this.path) {
          this.pipelines = pipelines;
        }
      }
      await this.poll();
    });
    this._changed.emit();
  }

  /** Ask for the state of the run shown (only while active); returns whether anything changed. */
  async poll(): Promise<boolean> {
    const path = this.path;
    if (!this._active || path === null || !this.dag?.ok) {
      return false;
    }
    const answer = await this.api.status(path, this.shownRun, this.status?.token);
    if (!answer.changed || path !== this.path) {
      return false;
    }
    this.status = answer;
    if (this._startedRun !== null && answer.run?.run_id === this._startedRun && answer.run.state !== 'running') {
      this._startedRun = null; // "Run … started." said while it ran: it has ended
      this.message = null;
    }
    this._changed.emit();
    return true;
  }

  /** Poll until disposed (or hidden): every ``pollMs``, or four times as often while a run goes on. */
  start(): void {
    if (this._timer !== null) {
      return;
    }
    const round = ++this._round; // a poll still going on when polling stopped starts no other
    const tick = () => {
      this.poll()
        .catch(() => undefined)
        .finally(() => {
          if (this._timer !== null && round === this._round) {
            this._timer = setTimeout(tick, this.running ? this.pollMs / 4 : this.pollMs);
          }
        });
    };
    this._timer = setTimeout(tick, this.pollMs);
  }

  dispose(): void {
    this._round++;
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    this.stopFollowing();
  }

  select(name: string | null): void {
    if (name !== this.logView?.task) {
      this.logView = null; // another task's log is not this one's
      this.stopFollowing();
    }
    this.selected = name;
    this._changed.emit();
  }

  /**
   * Show ``task``'s log in the run shown, and follow it while its attempt runs: every
   * ``pollMs / 4`` only the text after what was read is asked for (the server's ``offset``) and
   * appended. A task that did not run (up to date, upstream failed) gets a calm note instead.
   */
  async showLog(task: string): Promise<void> {
    this.logView = { task, text: '', traceback: null, note: null, offset: null, attempt: null, runId: null, complete: false, state: '' };
    await this.readLog();
    if (this._active && this.logView?.task === task && this._logTimer === null) {
      const chain = ++this._logChain; // a step still going on when following stopped starts no other
      const tick = () => {
        this.followLog()
          .catch(() => undefined)
          .finally(() => {
            if (chain === this._logChain && this.logView) {
              this._logTimer = setTimeout(tick, this.pollMs / 4);
            }
          });
      };
      this._logTimer = setTimeout(tick, this.pollMs / 4);
    }
  }

  /** One step of following the shown log: read on while it may grow, or afresh when its task's state changed. */
  async followLog(): Promise<void> {
    const view = this.logView;
    if (!view || !this._active) {
      return;
    }
    const state = this.status?.tasks?.[view.task]?.state ?? '';
    if (view.complete && state === view.state) {
      return; // ended, and nothing happened to the task since: nothing to ask
    }
    if (view.complete) {
      Object.assign(view, { text: '', traceback: null, note: null, offset: null, attempt: null, complete: false });
    }
    await this.readLog();
  }

  private stopFollowing(): void {
    this._logChain++;
    if (this._logTimer !== null) {
      clearTimeout(this._logTimer);
      this._logTimer = null;
    }
  }

  /** Read the shown log: all of it at first, then what follows the offset the server gave. */
  private async readLog(): Promise<void> {
    const view = this.logView;
    const path = this.path;
    if (!view || path === null || !this._active || this._logBusy) {
      return;
    }
    const taskState = this.status?.tasks?.[view.task];
    const note = noLogNote(taskState);
    view.state = taskState?.state ?? '';
    if (note !== null) {
      Object.assign(view, { note, text: '', traceback: null, offset: null, attempt: null });
      view.complete = !LIVE_STATES.has(view.state);
      this._changed.emit();
      return;
    }
    view.note = null;
    const follow = view.offset === null ? { offset: 0 } : { offset: view.offset, attempt: view.attempt ?? undefined };
    this._logBusy = true;
    try {
      await this.guard(async () => {
        const run = view.offset === null ? this.shownRun : view.runId;
        const answer = await this.api.log(path, view.task, run, follow);
        if (this.logView !== view || path !== this.path) {
          return; // another log (or folder) was chosen meanwhile
        }
        const follows = typeof answer.offset === 'number';
        const appended = follows && view.offset !== null && answer.attempt === view.attempt && answer.run_id === view.runId;
        view.text = appended ? view.text + answer.text : answer.text;
        view.offset = follows ? answer.offset! : null;
        view.attempt = answer.attempt;
        view.runId = answer.run_id;
        view.traceback = answer.traceback;
        const ended = answer.complete ?? !LIVE_STATES.has(answer.state);
        // a retry may start another attempt: the task's own state says whether anything is to come
        view.complete = ended && !LIVE_STATES.has(view.state);
        if (ended && LIVE_STATES.has(view.state)) {
          view.offset = null; // the next attempt's log is read from its start
        }
      });
    } finally {
      this._logBusy = false;
    }
    this._changed.emit();
  }

  async showRun(runId: string | null): Promise<void> {
    this.shownRun = runId;
    this.status = null;
    this.logView = null;
    this.stopFollowing();
    await this.guard(() => this.poll());
    this._changed.emit();
  }

  async runPipeline(params: { [name: string]: unknown } = {}, only?: string[], force = false): Promise<string | null> {
    if (this.path === null) {
      return null;
    }
    let runId: string | null = null;
    await this.guard(async () => {
      const started = await this.api.run(this.path!, params, only, force);
      runId = started.run_id;
      this.shownRun = null;
      this._startedRun = runId;
      this.say(`Run ${runId ?? ''} started${only ? ` (${only.join(', ')} and what it needs)` : ''}.`);
      await this.poll();
    });
    return runId;
  }

  async stop(): Promise<void> {
    const run = this.run;
    if (this.path === null || !run || run.state !== 'running') {
      this.say('No run is going on.', true);
      return;
    }
    await this.guard(async () => {
      await this.api.stop(this.path!, run.run_id);
      this.say(`Stopping run ${run.run_id}…`);
    });
  }

  /** ``task``'s whole log in the run shown (the panel follows it with showLog). */
  async log(task: string): Promise<Wire.ILog | null> {
    if (this.path === null || !this._active) {
      return null;
    }
    let result: Wire.ILog | null = null;
    await this.guard(async () => {
      result = await this.api.log(this.path!, task, this.shownRun);
    });
    return result;
  }

  async addUpstream(task: string, upstream: string): Promise<boolean> {
    return this.editUpstream(task, { add: upstream });
  }

  async removeUpstream(task: string, upstream: string): Promise<boolean> {
    return this.editUpstream(task, { remove: upstream });
  }

  private async editUpstream(task: string, change: { add?: string; remove?: string }): Promise<boolean> {
    if (this.path === null) {
      return false;
    }
    const ok = await this.guard(async () => {
      this.dag = await this.api.editUpstream(this.path!, task, change);
      this.status = null;
      await this.poll();
      this.say(change.add ? `${task} now reads ${change.add}.` : `${task} no longer reads ${change.remove}.`);
    });
    this._changed.emit();
    return ok;
  }

  /** Whether ``task``'s latest attempt in the run shown failed: it can be debugged. */
  canDebug(task: string | null): boolean {
    return task !== null && this.status?.tasks?.[task]?.state === 'failed';
  }

  /** Have the server write the debug notebook of ``task``'s failed attempt in the run shown. */
  async debug(task: string): Promise<Wire.IDebug | null> {
    if (this.path === null) {
      return null;
    }
    let result: Wire.IDebug | null = null;
    await this.guard(async () => {
      result = await this.api.debug(this.path!, task, this.status?.run?.run_id ?? this.shownRun);
      this.say(`Debugging ${task}: ${result!.path}`);
    });
    return result;
  }

  say(text: string, error = false): void {
    this.message = { text, error };
    this._changed.emit();
  }

  /** Run ``work``; a server error becomes the panel's message (never an uncaught rejection). */
  private async guard(work: () => Promise<unknown>): Promise<boolean> {
    try {
      await work();
      return true;
    } catch (error) {
      const text = error instanceof NbflowResponseError ? error.message : String(error);
      this.say(text, true);
      return false;
    }
  }

  private _changed = new Signal<this, void>(this);
  private _activeChanged = new Signal<this, boolean>(this);
  private _active = false;
  private _followed: string | null = null;
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _round = 0;
  private _startedRun: string | null = null;
  private _logTimer: ReturnType<typeof setTimeout> | null = null;
  private _logBusy = false;
  private _logChain = 0;
}
