// The panel's model against a recording fake of the server API (handler.ts is what it stands for).
import { strict as assert } from 'node:assert';
import { test, TestContext } from 'node:test';

import { PipelineModel } from '../src/model';
import { IApi, NbflowResponseError } from '../src/tokens';
import { dag, FakeServer } from './fake';

/** A model whose panel is shown (so it asks the server), hidden again when the test ends. */
async function shown(t: TestContext, api: IApi): Promise<PipelineModel> {
  const model = new PipelineModel(api, 60_000);
  await model.activate();
  t.after(() => model.deactivate());
  return model;
}

test('a folder loads its DAG and the latest run, then polls cheaply', async t => {
  const api = new FakeServer();
  const model = await shown(t, api);
  let changes = 0;
  model.changed.connect(() => changes++);
  api.states = { load: 'running' };
  await model.setPath('pipe');
  assert.deepEqual(model.paint(), { load: ['running', '#8ab4f8', ''], clean: ['', '#ffffff', ''] });
  assert.equal(model.running, true);
  assert.equal(await model.poll(), false, 'same token: nothing changed');
  assert.match(api.calls[api.calls.length - 1], /since|t1/);
  api.token = 't2';
  api.states = { load: 'success', clean: 'success' };
  api.runState = 'success';
  assert.equal(await model.poll(), true);
  assert.deepEqual(Object.values(model.paint()).map(p => p[0]), ['success', 'success']);
  assert.ok(changes >= 2);
});

test('run, run a task with its upstreams, stop: what reaches the server', async t => {
  const api = new FakeServer();
  const model = await shown(t, api);
  await model.setPath('pipe');
  await model.runPipeline({ rows: 5 }, undefined, true);
  await model.runPipeline({}, ['clean']);
  await model.stop();
  assert.deepEqual(
    api.calls.filter(c => c.startsWith('run') || c.startsWith('stop')),
    ['run pipe {"rows":5} null true', 'run pipe {} ["clean"] false', 'stop pipe r1']
  );
  assert.match(model.message!.text, /Stopping run r1/);
});

test('a server error becomes the panel message, never an exception', async t => {
  const api = new FakeServer();
  const model = await shown(t, api);
  await model.setPath('pipe');
  api.failNext = new NbflowResponseError(409, 'Another nbflow run is running the pipeline');
  assert.equal(await model.runPipeline(), null);
  assert.deepEqual(model.message, { text: 'Another nbflow run is running the pipeline', error: true });
  api.failNext = new NbflowResponseError(400, 'Cycle in upstreams: load -> clean -> load.');
  assert.equal(await model.addUpstream('load', 'clean'), false);
  assert.equal(model.message!.error, true);
  assert.deepEqual(model.task('load')!.upstream, [], 'the DAG is unchanged');
});

test('adding and removing an upstream updates the DAG from the answer', async t => {
  const api = new FakeServer();
  const model = await shown(t, api);
  await model.setPath('pipe');
  assert.equal(await model.addUpstream('clean', 'extra'), true);
  assert.deepEqual(model.task('clean')!.upstream, ['load', 'extra']);
  assert.equal(await model.removeUpstream('clean', 'load'), true);
  assert.deepEqual(model.task('clean')!.upstream, []);
  assert.deepEqual(api.calls.filter(c => c.startsWith('edit')), ['edit pipe clean {"add":"extra"}', 'edit pipe clean {"remove":"load"}']);
});

test('choosing a past run asks for that run', async t => {
  const api = new FakeServer();
  const model = await shown(t, api);
  await model.setPath('pipe');
  await model.showRun('r0');
  assert.equal(model.shownRun, 'r0');
  assert.match(api.calls[api.calls.length - 1], /^status pipe r0 -$/);
});

test('with the panel hidden, following folders asks the server nothing', async t => {
  const api = new FakeServer();
  const model = new PipelineModel(api, 60_000);
  t.after(() => model.deactivate());
  await model.follow('a');
  await model.follow('pipe');
  assert.deepEqual(api.calls, [], 'browsing with the panel closed sends no request');
  assert.equal(model.path, null);
  assert.equal(await model.poll(), false);
  assert.equal(await model.log('load'), null);
  assert.deepEqual(api.calls, []);

  await model.activate(); // the panel is shown: the folder the file browser is in
  assert.deepEqual(api.calls, ['dag pipe', 'status pipe - -']);
  assert.equal(model.path, 'pipe');
  await model.follow('other');
  assert.deepEqual(api.calls.slice(2), ['dag other', 'status other - -'], 'shown: it follows at once');

  model.deactivate();
  const before = api.calls.length;
  await model.follow('third');
  assert.equal(await model.poll(), false);
  assert.equal(api.calls.length, before, 'hidden again: nothing asked');
  await model.activate();
  assert.deepEqual(api.calls.slice(before), ['dag third', 'status third - -']);
  model.deactivate();
  await model.activate(); // shown again on the same folder: asked afresh
  assert.deepEqual(api.calls.slice(before + 2), ['dag third', 'status third - -']);
});

test('an answer about a folder left meanwhile is dropped', async t => {
  class SlowServer extends FakeServer {
    release: () => void = () => undefined;
    async dag(path: string) {
      if (path === 'slow') {
        await new Promise<void>(resolve => (this.release = resolve));
        this.calls.push('dag slow');
        return { ...dag({ stale: [] }), path: 'slow' };
      }
      return super.dag(path);
    }
  }
  const api = new SlowServer();
  const model = await shown(t, api);
  const first = model.setPath('slow');
  await model.setPath('pipe');
  api.release();
  await first;
  assert.equal(model.path, 'pipe');
  assert.deepEqual(model.tasks.map(task => task.name), ['load', 'clean'], "the slow folder's DAG is not shown");
});

test('a failed task can be debugged in the run shown; others cannot', async t => {
  const api = new FakeServer();
  const model = await shown(t, api);
  api.states = { load: 'success', clean: 'failed' };
  api.runState = 'failed';
  await model.setPath('pipe');
  assert.equal(model.canDebug('clean'), true);
  assert.equal(model.canDebug('load'), false);
  assert.equal(model.canDebug(null), false);
  const debug = await model.debug('clean');
  assert.equal(debug!.path, 'pipe/_nbflow/debug/clean.ipynb');
  assert.deepEqual(api.calls.filter(c => c.startsWith('debug')), ['debug pipe clean r1']);
  api.failNext = new NbflowResponseError(409, "'load' has no failed attempt in run r1 to debug.");
  assert.equal(await model.debug('load'), null);
  assert.deepEqual(model.message, { text: "'load' has no failed attempt in run r1 to debug.", error: true });
});

test('a running task\'s log is followed: only the text after the offset is asked for, appended', async t => {
  const api = new FakeServer();
  const model = await shown(t, api);
  api.states = { load: 'running' };
  await model.setPath('pipe');
  api.logText = 'tick 1\n';
  await model.showLog('load');
  assert.equal(model.logView!.text, 'tick 1\n');
  api.logText = 'tick 1\ntick 2\n';
  await model.followLog();
  assert.equal(model.logView!.text, 'tick 1\ntick 2\n');
  assert.deepEqual(api.calls.filter(c => c.startsWith('log')), ['log pipe load 0', 'log pipe load 7'], 'the first line is not asked again');
  api.logEnded = true;
  api.states = { load: 'success' };
  api.token = 't2';
  await model.poll();
  await model.followLog();
  assert.equal(model.logView!.complete, true);
  const asked = api.calls.length;
  await model.followLog();
  assert.equal(api.calls.length, asked, 'ended: nothing more is asked');
});

test('a task that did not run gets a calm note, not an error, and no request', async t => {
  const api = new FakeServer();
  const model = await shown(t, api);
  api.states = { load: 'up_to_date', clean: 'upstream_failed' };
  await model.setPath('pipe');
  model.status!.tasks!.load.reason = 'up to date since run 20260101-abc';
  await model.showLog('load');
  assert.equal(model.logView!.note, 'up to date: reused from run 20260101-abc, nothing ran');
  model.select('clean');
  await model.showLog('clean');
  assert.equal(model.logView!.note, 'not run: an upstream failed');
  assert.equal(model.message, null, 'no error said');
  assert.deepEqual(api.calls.filter(c => c.startsWith('log')), []);
});

test('"Run … started." is cleared when the run ends; Stop has nothing to stop when idle', async t => {
  const api = new FakeServer();
  const model = await shown(t, api);
  await model.setPath('pipe');
  await model.runPipeline();
  assert.match(model.message!.text, /^Run r1 started/);
  assert.equal(model.running, true);
  api.runState = 'success';
  api.token = 't2';
  await model.poll();
  assert.equal(model.message, null);
  assert.equal(model.running, false);
});

test('a folder that is not a pipeline asks for the pipelines below it', async t => {
  const api = new FakeServer();
  const model = await shown(t, api);
  api.graph = { path: '', ok: false, problems: [{ message: 'bad', path: null }] };
  api.folders = { path: '', pipeline: false, pipelines: [{ path: 'pipe', name: 'pipe' }] };
  await model.setPath('');
  assert.equal(model.notAPipeline, true);
  assert.deepEqual(model.pipelines!.pipelines.map(p => p.path), ['pipe']);
  api.graph = dag({ load: [] });
  await model.setPath('pipe');
  assert.equal(model.notAPipeline, false);
  assert.ok(!api.calls.includes('pipelines pipe'), 'a pipeline is not searched below');
});
