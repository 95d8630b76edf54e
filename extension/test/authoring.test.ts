// Loading a notebook's inputs and debugging a failed task, apart from JupyterLab: the wording,
// the upstream run waited for, the debug notebook's cells.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import { debugCells, loadedNotice, runFailure, runUpstreams } from '../src/authoring';
import { FakeServer } from './fake';

test('loaded inputs name what was set; a missing upstream is a warning that says why', async () => {
  const api = new FakeServer();
  api.states = { load: 'success' };
  const ok = loadedNotice(await api.inputs('pipe/clean.ipynb'));
  assert.equal(ok.level, 'success');
  assert.equal(ok.message, 'clean: inputs loaded. Set limit, upstream, product.');
  api.states = {};
  const missing = loadedNotice(await api.inputs('pipe/clean.ipynb'));
  assert.equal(missing.level, 'warning');
  assert.match(missing.message, /^clean: missing upstream load \(it has not run successfully\)/);
  assert.match(missing.details, /run them first/);
  const objects = loadedNotice({ ...(await api.inputs('pipe/clean.ipynb')), missing: [], unchecked: ['s3://bucket/load.csv'] });
  assert.match(objects.details, /Not checked .*s3:\/\/bucket\/load\.csv/);
});

test('the stale upstreams run first, only them, and their failure is told', async () => {
  const api = new FakeServer();
  api.states = { load: 'failed' };
  api.runState = 'failed';
  const inputs = await api.inputs('pipe/clean.ipynb');
  const failure = await runUpstreams(api, inputs, 1);
  assert.deepEqual(api.calls.filter(c => c.startsWith('run')), ['run pipe {} ["load"] false']);
  assert.equal(failure, 'Run r1 failed: load failed. Inputs not loaded.');
  api.states = { load: 'success' };
  api.runState = 'success';
  api.token = 't2';
  assert.equal(await runUpstreams(api, inputs, 1), null);
  assert.equal(await runUpstreams(api, { ...inputs, upstreams: [] }, 1), null, 'nothing to run');
  assert.equal(api.calls.filter(c => c.startsWith('run')).length, 2);
});

test('an upstream run still going on is waited for', async () => {
  const api = new FakeServer();
  api.states = { load: 'running' };
  let polls = 0;
  const status = api.status.bind(api);
  api.status = async (path, run, since) => {
    if (++polls === 3) {
      api.runState = 'success';
      api.states = { load: 'success' };
      api.token = 't2';
    }
    return status(path, run, since);
  };
  assert.equal(await runUpstreams(api, await api.inputs('pipe/clean.ipynb'), 1), null);
  assert.ok(polls >= 3);
});

test("a debug notebook's cells to run come from its metadata, never the failing one or after", () => {
  assert.deepEqual(debugCells({ debug: { run_cells: [0, 1, 2, 5], failed_cell: 3 } }, 9), { runCells: [0, 1, 2], failedCell: 3 });
  assert.deepEqual(debugCells(undefined, 2), { runCells: [], failedCell: 2 });
  assert.deepEqual(debugCells({ debug: { run_cells: ['x', 1] } }, 4), { runCells: [1], failedCell: 4 });
  assert.deepEqual(debugCells({}, 3, [0, 2]), { runCells: [0, 2], failedCell: 3 }, "the server's list when the metadata has none");
});

test('a failed run names its failed tasks and their errors', () => {
  const text = runFailure({
    changed: true,
    token: 't',
    run: { run_id: 'r9', state: 'failed', started_at: '', ended_at: null, duration: null, params: {}, pid: 1 },
    tasks: {
      a: { state: 'success', colour: '', note: '', attempts: 1, duration_s: 1, error: null, output_notebook: null },
      b: { state: 'failed', colour: '', note: '', attempts: 1, duration_s: 1, error: 'ValueError: <b>', output_notebook: null }
    }
  });
  assert.equal(text, 'Run r9 failed: b failed (ValueError: <b>). Inputs not loaded.');
});
