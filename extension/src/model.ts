// The panel's state: the folder's DAG, the run shown and its tasks' states, kept fresh by
// polling the server with a "changed since" token (an unchanged store costs a few stat calls).
// Only while the panel is shown (active) does it follow the file browser's folder and ask the
// server anything: browsing folders with the panel closed sends nbflow no request.
import { ISignal, Signal } from '@lumino/signaling';

import { IApi, NbflowResponseError, Wire } from './tokens';

export type Paint = { [task: string]: [state: string, colour: string, note: string] };

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
  }

  select(name: string | null): void {
    this.selected = name;
    this._changed.emit();
  }

  async showRun(runId: string | null): Promise<void> {
    this.shownRun = runId;
    this.status = null;
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
}
