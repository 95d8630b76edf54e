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
  }
  export interface IStatus {
    changed: boolean;
    token: string;
    run?: IRun | null;
    tasks?: { [name: string]: ITaskState };
    runs?: IRun[];
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
  }
  export interface IStarted {
    pid: number;
    run_id: string | null;
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
  log(path: string, task: string, run?: string | null): Promise<Wire.ILog>;
  editUpstream(path: string, task: string, change: { add?: string; remove?: string }): Promise<Wire.IDag>;
  info(): Promise<Wire.IInfo>;
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
