// Wire types of nbflow's server API (nbflow/server/), command ids, and the error type.
// No JupyterLab imports here: the model and its tests use this file as it is.

import packageJson from '../package.json';

/** The frontend's version, package.json's; the server's must match (see checkVersion in index.ts). */
export const VERSION: string = packageJson.version;

export namespace CommandIDs {
  export const openPanel = 'nbflow:open-panel';
  export const runPipeline = 'nbflow:run-pipeline';
  export const runNotebook = 'nbflow:run-notebook';
  export const stopRun = 'nbflow:stop-run';
  export const loadInputs = 'nbflow:load-inputs';
  export const runUpstreamsLoadInputs = 'nbflow:run-upstreams-load-inputs';
  export const debugTask = 'nbflow:debug-task';
  export const openView = 'nbflow:open-view';
}

export namespace Wire {
  export interface ITask {
    name: string;
    path: string | null;
    kind: string;
    upstream: string[];
    /** false: a task of nbflow_tasks.py listed from reading it; its code runs only when the pipeline runs */
    loaded?: boolean;
  }
  /** The folder's nbflow_tasks.py as the server saw it: read, never run, by a view. */
  export interface ICode {
    file: string | null;
    loaded: boolean;
    complete: boolean;
    note: string | null;
  }
  export interface IProblem {
    message: string;
    path: string | null;
  }
  export interface IDag {
    path: string;
    ok: boolean;
    problems: IProblem[];
    tasks?: ITask[];
    edges?: [string, string][];
    svg?: string;
    layout?: string;
    note?: string;
    parameters?: { [name: string]: string };
    code?: ICode | null;
  }
  export interface IRun {
    run_id: string;
    state: string;
    started_at: string;
    ended_at: string | null;
    duration: string | null;
    params: { [name: string]: unknown };
    pid: number;
  }
  export interface ITaskState {
    state: string;
    colour: string;
    note: string;
    attempts: number;
    duration_s: number | null;
    error: string | null;
    output_notebook: string | null;
    /** why the task ran or was skipped in this run ("up to date since run ...") */
    reason?: string | null;
  }
  export interface IStatus {
    changed: boolean;
    token: string;
    run?: IRun | null;
    tasks?: { [name: string]: ITaskState };
    runs?: IRun[];
    /** each state's colour (nbflow's states.COLOURS) */
    colours?: { [state: string]: string };
  }
  export interface ILog {
    task: string;
    run_id: string;
    attempt: number;
    state: string;
    text: string;
    error: string | null;
    traceback: string | null;
    output_notebook: string | null;
    /** with ``offset`` asked: where ``text`` ends (pass it back), and whether the attempt ended */
    offset?: number;
    complete?: boolean;
  }
  /** GET grid: recent runs (newest first) x tasks (topological order). */
  export interface IGrid {
    runs: { run_id: string; state: string; started_at: string; duration_s: number | null }[];
    tasks: string[];
    cells: { [runId: string]: { [task: string]: { state: string; attempts: number; duration_s: number | null } } };
  }
  /** One attempt of a task in a run's timeline; seconds since the run's start. */
  export interface IBar {
    task: string;
    attempt: number;
    state: string;
    ready_s: number | null;
    start_s: number;
    kernel_ready_s: number | null;
    end_s: number | null;
  }
  /** GET timeline: a run's attempts (Gantt). */
  export interface ITimeline {
    run_id: string;
    state: string;
    started_at: string;
    duration_s: number | null;
    /** seconds from the run's start to when the server answered */
    now_s?: number | null;
    /** every task of the run, in order, and its state there (tasks that never started included) */
    tasks?: string[];
    states?: { [task: string]: string };
    bars: IBar[];
  }
  /** GET trend: one task's attempts across runs, oldest first. */
  export interface ITrend {
    task: string;
    points: { run_id: string; attempt: number; started_at: string; duration_s: number | null; state: string }[];
  }
  /** A folder below the one asked about that is a pipeline (GET pipelines). */
  export interface IPipelineFolder {
    path: string;
    name: string;
  }
  export interface IPipelines {
    path: string;
    /** whether the folder asked about is a pipeline itself */
    pipeline: boolean;
    pipelines: IPipelineFolder[];
  }
  export interface IStarted {
    pid: number;
    run_id: string | null;
  }
  /** An upstream whose products a run would inject but that are not there (yet). */
  export interface IMissingUpstream {
    task: string;
    reason: string;
  }
  /** What a run would inject into a notebook now (GET inputs); paths relative to the server's root. */
  export interface IInputs {
    task: string;
    folder: string;
    notebook: string;
    cwd: string;
    language: string;
    kernel_name: string;
    parameters: { [name: string]: unknown };
    secrets: string[];
    /** the injected cell, in the notebook's language, with the absolute paths a run injects */
    code: string;
    upstreams: string[];
    missing: IMissingUpstream[];
    /** the upstreams' object and table products, not probed: their last success vouches for them */
    unchecked?: string[];
  }
  /** A debug notebook written for a failed attempt (POST debug); paths relative to the server's root. */
  export interface IDebug {
    task: string;
    run_id: string;
    attempt: number;
    path: string;
    cwd: string;
    failed_cell: number;
    kernel_name: string;
    language: string;
    /** the cells to run, in order, to reach the failure (also in the notebook's metadata) */
    run_cells?: number[];
    /** the attempt's recorded error */
    error?: string | null;
  }
  export interface IInfo {
    version: string;
    root: string;
  }
}

/** What the model needs from the server: one method per endpoint (handler.ts implements it). */
export interface IApi {
  dag(path: string): Promise<Wire.IDag>;
  status(path: string, run?: string | null, since?: string | null): Promise<Wire.IStatus>;
  run(path: string, params: { [name: string]: unknown }, only?: string[], force?: boolean): Promise<Wire.IStarted>;
  stop(path: string, runId: string): Promise<unknown>;
  log(path: string, task: string, run?: string | null, follow?: { offset: number; attempt?: number }): Promise<Wire.ILog>;
  pipelines(path: string): Promise<Wire.IPipelines>;
  editUpstream(path: string, task: string, change: { add?: string; remove?: string }): Promise<Wire.IDag>;
  info(): Promise<Wire.IInfo>;
  inputs(notebook: string, task?: string, path?: string): Promise<Wire.IInputs>;
  debug(path: string, task: string, run?: string | null): Promise<Wire.IDebug>;
}

/** An error answer of the server: its HTTP status and message. */
export class NbflowResponseError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
    this.name = 'NbflowResponseError';
  }
}
