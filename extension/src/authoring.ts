// Authoring, apart from JupyterLab: what loading a notebook's inputs says, running its stale
// upstreams first, and which cells of a debug notebook to run. No JupyterLab imports here:
// the tests use this file as it is (kernel.ts does the JupyterLab side).
import { IApi, Wire } from './tokens';

/** What a notification says: its level, a short message (a toast shows 140 characters) and the whole story. */
export interface INotice {
  level: 'success' | 'warning' | 'error';
  message: string;
  details: string;
}

/** The names a run would set in the kernel: its parameters (upstream, product, ...) and secrets. */
export function namesSet(inputs: Wire.IInputs): string[] {
  return [...Object.keys(inputs.parameters), ...inputs.secrets.filter(s => !(s in inputs.parameters))];
}

/** What loading ``inputs`` into a kernel says: the names set, and (a warning) the upstreams missing and why. */
export function loadedNotice(inputs: Wire.IInputs): INotice {
  const names = namesSet(inputs);
  const set = names.length ? `Set ${names.join(', ')}.` : 'Nothing to set.';
  const unchecked = inputs.unchecked?.length
    ? [`Not checked (their upstream's last success counts): ${inputs.unchecked.join(', ')}.`]
    : [];
  if (!inputs.missing.length) {
    const details = [`Task ${inputs.task}: ${set}`, ...unchecked].join('\n');
    return { level: 'success', message: `${inputs.task}: inputs loaded. ${set}`, details };
  }
  const missing = inputs.missing.map(m => `${m.task} (${m.reason})`);
  const plural = inputs.missing.length > 1 ? 's' : '';
  const details = [
    `Task ${inputs.task}: ${set}`,
    `Missing upstream${plural}: ${missing.join('; ')}.`,
    'Their paths are set, but what they point to is not there: run them first ' +
      '(nbflow: Run Stale Upstreams, then Load Inputs).',
    ...unchecked
  ].join('\n');
  return { level: 'warning', message: `${inputs.task}: missing upstream${plural} ${missing.join('; ')}. ${set}`, details };
}

/** The notice of a failure: the server's or the kernel's message. */
export function errorNotice(what: string, error: unknown): INotice {
  const text = error instanceof Error ? error.message : String(error);
  return { level: 'error', message: `${what}: ${text}`, details: `${what}:\n${text}` };
}

/** What a finished upstream run says when it did not succeed: its failed tasks and their errors. */
export function runFailure(status: Wire.IStatus): string {
  const run = status.run;
  const failed = Object.entries(status.tasks ?? {})
    .filter(([, t]) => !['success', 'up_to_date', 'skipped'].includes(t.state))
    .map(([name, t]) => `${name} ${t.state}${t.error ? ` (${t.error})` : ''}`);
  return `Run ${run?.run_id ?? ''} ${run?.state ?? 'ended'}${failed.length ? ': ' + failed.join('; ') : ''}. Inputs not loaded.`;
}

/** Wait, polling as the panel does, until run ``runId`` of ``folder`` (the latest if null) is not running. */
export async function waitForRun(api: IApi, folder: string, runId: string | null, pollMs = 500): Promise<Wire.IStatus> {
  let token: string | null = null;
  let last: Wire.IStatus | null = null;
  for (;;) {
    const answer = await api.status(folder, runId, token);
    if (answer.changed) {
      last = answer;
      token = answer.token;
    }
    if (last?.run && last.run.state !== 'running') {
      return last;
    }
    await new Promise(resolve => setTimeout(resolve, pollMs));
  }
}

/**
 * Run the upstreams of ``inputs``' task that are not up to date (a run of them only, with what
 * they need) and wait for it; null if it succeeded (or there is nothing to run), else what failed.
 */
export async function runUpstreams(api: IApi, inputs: Wire.IInputs, pollMs = 500): Promise<string | null> {
  if (!inputs.upstreams.length) {
    return null;
  }
  const started = await api.run(inputs.folder, {}, inputs.upstreams);
  const status = await waitForRun(api, inputs.folder, started.run_id, pollMs);
  return status.run?.state === 'success' ? null : runFailure(status);
}

/** Which cells of a debug notebook to run first, and which one failed, from its ``nbflow.debug`` metadata. */
export function debugCells(metadata: unknown, failedCell: number, runCells: number[] = []): { runCells: number[]; failedCell: number } {
  const debug = (metadata as { debug?: { run_cells?: unknown; failed_cell?: unknown } } | undefined)?.debug;
  const listed = (Array.isArray(debug?.run_cells) ? debug!.run_cells : runCells).filter((i): i is number => Number.isInteger(i));
  const failed = Number.isInteger(debug?.failed_cell) ? (debug!.failed_cell as number) : failedCell;
  return { runCells: listed.filter(i => i >= 0 && i < failed), failedCell: failed };
}
