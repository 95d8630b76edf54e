// A recording fake of the server API (handler.ts is what it stands for), for the model's and authoring's tests.
import { IApi, NbflowResponseError, Wire } from '../src/tokens';

export function dag(upstream: { [task: string]: string[] }): Wire.IDag {
  return {
    path: 'pipe',
    ok: true,
    problems: [],
    tasks: Object.entries(upstream).map(([name, ups]) => ({ name, path: `pipe/${name}.ipynb`, kind: 'notebook', upstream: ups })),
    svg: '<svg></svg>',
    parameters: { rows: '3' }
  };
}

export class FakeServer implements IApi {
  calls: string[] = [];
  graph = dag({ load: [], clean: ['load'] });
  token = 't1';
  states: { [task: string]: string } = {};
  runState = 'running';
  failNext: NbflowResponseError | null = null;

  private check(): void {
    if (this.failNext) {
      const e = this.failNext;
      this.failNext = null;
      throw e;
    }
  }
  async dag(path: string) {
    this.calls.push(`dag ${path}`);
    this.check();
    return this.graph;
  }
  async status(path: string, run?: string | null, since?: string | null): Promise<Wire.IStatus> {
    this.calls.push(`status ${path} ${run ?? '-'} ${since ?? '-'}`);
    if (since === this.token) {
      return { changed: false, token: this.token };
    }
    const tasks: { [n: string]: Wire.ITaskState } = {};
    for (const [name, state] of Object.entries(this.states)) {
      tasks[name] = { state, colour: state === 'success' ? '#8fd19e' : '#8ab4f8', note: '', attempts: 1, duration_s: null, error: null, output_notebook: null };
    }
    const r: Wire.IRun = { run_id: run ?? 'r1', state: this.runState, started_at: '', ended_at: null, duration: null, params: {}, pid: 1 };
    return { changed: true, token: this.token, run: r, tasks, runs: [r] };
  }
  async run(path: string, params: { [n: string]: unknown }, only?: string[], force?: boolean) {
    this.calls.push(`run ${path} ${JSON.stringify(params)} ${JSON.stringify(only ?? null)} ${force ?? false}`);
    this.check();
    return { pid: 1, run_id: 'r1' };
  }
  async stop(path: string, runId: string) {
    this.calls.push(`stop ${path} ${runId}`);
    return {};
  }
  /** A log that grows: what the task printed so far; ``logEnded`` once its attempt ended. */
  logText: string | null = null;
  logEnded = false;
  folders: Wire.IPipelines | null = null;
  async log(path: string, task: string, run?: string | null, follow?: { offset: number; attempt?: number }): Promise<Wire.ILog> {
    this.calls.push(`log ${path} ${task} ${follow ? follow.offset : '-'}`);
    const text = this.logText ?? `${path}/${task} said hi`;
    const state = this.logText === null || this.logEnded ? 'success' : 'running';
    const base = { task, run_id: 'r1', attempt: 1, state, error: null, traceback: null, output_notebook: null };
    if (!follow || this.logText === null) {
      return { ...base, text };
    }
    return { ...base, text: text.slice(follow.offset), offset: text.length, complete: this.logEnded };
  }
  async pipelines(path: string): Promise<Wire.IPipelines> {
    this.calls.push(`pipelines ${path}`);
    return this.folders ?? { path, pipeline: true, pipelines: [] };
  }
  async editUpstream(path: string, task: string, change: { add?: string; remove?: string }) {
    this.calls.push(`edit ${path} ${task} ${JSON.stringify(change)}`);
    this.check();
    const current = dag({ load: [], clean: ['load'] }).tasks!.find(t => t.name === task)!.upstream;
    this.graph = dag({ load: [], clean: change.add ? [...current, change.add] : current.filter(u => u !== change.remove) });
    return this.graph;
  }
  async info() {
    return { version: '0.1.0', root: '/' };
  }
  async inputs(notebook: string): Promise<Wire.IInputs> {
    this.calls.push(`inputs ${notebook}`);
    this.check();
    const missing = this.states.load === 'success' ? [] : [{ task: 'load', reason: 'it has not run successfully' }];
    return {
      task: 'clean',
      folder: 'pipe',
      notebook,
      cwd: 'pipe',
      language: 'python',
      kernel_name: 'python3',
      parameters: { limit: 10, upstream: { load: '/root/pipe/load.csv' }, product: { data: '/root/pipe/clean.csv' } },
      secrets: [],
      code: 'limit = 10',
      upstreams: ['load'],
      missing
    };
  }
  async debug(path: string, task: string, run?: string | null): Promise<Wire.IDebug> {
    this.calls.push(`debug ${path} ${task} ${run ?? '-'}`);
    this.check();
    return { task, run_id: run ?? 'r1', attempt: 1, path: `${path}/_nbflow/debug/${task}.ipynb`, cwd: path, failed_cell: 3, kernel_name: 'python3', language: 'python' };
  }
}
