// The one place that talks HTTP to nbflow's server extension.
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { IApi, NbflowResponseError, Wire } from './tokens';

export async function requestAPI<T>(endpoint: string, init: RequestInit = {}, query: Record<string, string> = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const search = new URLSearchParams(query).toString();
  const url = URLExt.join(settings.baseUrl, 'nbflow', endpoint) + (search ? `?${search}` : '');
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new NbflowResponseError(0, `The server did not answer: ${error}`);
  }
  const text = await response.text();
  let data: any = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = { message: text };
  }
  if (!response.ok) {
    throw new NbflowResponseError(response.status, data.message || response.statusText);
  }
  return data as T;
}

const post = (body: unknown): RequestInit => ({ method: 'POST', body: JSON.stringify(body) });

/** The server API, as the model uses it. */
export const serverApi: IApi = {
  dag: path => requestAPI<Wire.IDag>('dag', {}, { path, direction: 'TB' }),
  status: (path, run, since) =>
    requestAPI<Wire.IStatus>('status', {}, { path, ...(run ? { run } : {}), ...(since ? { since } : {}) }),
  run: (path, params, only, force) => requestAPI<Wire.IStarted>('runs', post({ path, params, only, force })),
  stop: (path, runId) => requestAPI(`runs/${encodeURIComponent(runId)}/stop`, post({ path })),
  log: (path, task, run, follow) =>
    requestAPI<Wire.ILog>('log', {}, {
      path,
      task,
      ...(run ? { run } : {}),
      ...(follow?.attempt !== undefined ? { attempt: String(follow.attempt) } : {}),
      ...(follow ? { offset: String(follow.offset) } : {})
    }),
  pipelines: path => requestAPI<Wire.IPipelines>('pipelines', {}, { path }),
  editUpstream: (path, task, change) => requestAPI<Wire.IDag>('upstream', post({ path, task, ...change, direction: 'TB' })),
  info: () => requestAPI<Wire.IInfo>('info'),
  inputs: (notebook, task, path) =>
    requestAPI<Wire.IInputs>('inputs', {}, { notebook, ...(task && path !== undefined ? { task, path } : {}) }),
  debug: (path, task, run) => requestAPI<Wire.IDebug>('debug', post({ path, task, ...(run ? { run } : {}) }))
};
