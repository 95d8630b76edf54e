// The pipeline view's pure parts: the Gantt's scale and segments, the trend's bars, the grid's
// rows, and the log follower against a recording server of text growing by offsets.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import { LogFollower } from '../src/follow';
import { formatSeconds, ganttLayout, niceStep, shorten, stateColour, ticks } from '../src/gantt';
import { gridRows } from '../src/grid';
import { Wire } from '../src/tokens';
import { trendLayout } from '../src/trend';

const bar = (task: string, attempt: number, state: string, ready: number | null, start: number, kernel: number | null, end: number | null): Wire.IBar => ({
  task,
  attempt,
  state,
  ready_s: ready,
  start_s: start,
  kernel_ready_s: kernel,
  end_s: end
});

test('nice steps and ticks cover the span with 1, 2, 5 x 10^k', () => {
  assert.equal(niceStep(10), 2);
  assert.equal(niceStep(7), 2);
  assert.equal(niceStep(100), 20);
  assert.equal(niceStep(0.5), 0.1);
  assert.deepEqual(ticks(9), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(ticks(1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.equal(ticks(0).length, 1);
});

test('long names are cut with an ellipsis, by characters', () => {
  assert.equal(shorten('load', 10), 'load');
  assert.equal(shorten('abcdefghijk', 5), 'abcd…');
  assert.equal(shorten('ééééé😀😀', 6), 'ééééé…');
});

test('seconds read as a person reads them', () => {
  assert.equal(formatSeconds(0.42), '0.4s');
  assert.equal(formatSeconds(12.4), '12s');
  assert.equal(formatSeconds(185), '3m 05s');
  assert.equal(formatSeconds(3725), '1h 02m');
  assert.equal(formatSeconds(null), '…');
});

test('the Gantt has a row per task, queued/kernel/running parts, and retries on the task row', () => {
  const tl: Wire.ITimeline = {
    run_id: 'r1',
    state: 'success',
    started_at: '2026-01-01T00:00:00',
    duration_s: 9,
    bars: [
      bar('load', 1, 'success', 0, 0.5, 2, 3),
      bar('clean', 1, 'failed', 3, 3.5, null, 5),
      bar('clean', 2, 'success', 5, 6, 7, 9)
    ]
  };
  const l = ganttLayout(tl, { width: 660, labelWidth: 100 });
  assert.deepEqual(l.rows.map(r => [r.task, r.attempts]), [['load', 1], ['clean', 2]]);
  assert.equal(l.ticks[l.ticks.length - 1].label, '10s');
  const plot = 660 - 100 - 12; // px for 10 s
  const load = l.segments.filter(s => s.task === 'load');
  assert.deepEqual(load.map(s => s.kind), ['queued', 'kernel', 'running']);
  assert.equal(load[0].x, 100);
  assert.ok(Math.abs(load[1].x - (100 + 0.05 * plot)) < 1e-9, 'the kernel starts with the attempt');
  assert.ok(Math.abs(load[2].x - (100 + 0.2 * plot)) < 1e-9, 'the notebook runs from its first cell');
  assert.ok(Math.abs(load[2].width - 0.1 * plot) < 1e-9);
  const clean = l.segments.filter(s => s.task === 'clean' && s.kind === 'running');
  assert.deepEqual(clean.map(s => [s.attempt, s.state, s.fill]), [[1, 'failed', stateColour('failed')], [2, 'success', stateColour('success')]]);
  assert.equal(new Set(l.segments.filter(s => s.task === 'clean').map(s => s.y)).size, 1, 'both attempts on one row');
  assert.match(clean[0].title, /clean · attempt 1 · failed\nran 1\.5s/);
});

test('an attempt still running reaches now; a run just started still has a scale', () => {
  const tl: Wire.ITimeline = { run_id: 'r2', state: 'running', started_at: 'x', duration_s: null, bars: [bar('load', 1, 'running', 0, 1, null, null)] };
  const l = ganttLayout(tl, { width: 412, labelWidth: 100, now: 4.5 });
  const running = l.segments.find(s => s.kind === 'running')!;
  assert.ok(Math.abs(running.x + running.width - (100 + 0.9 * 300)) < 1e-9, 'ends at 4.5 s of a 5 s axis');
  const listed = ganttLayout({ ...tl, tasks: ['load', 'report'], states: { load: 'running', report: 'pending' } }, { now: 4.5 });
  assert.deepEqual(listed.rows.map(r => [r.task, r.attempts, r.state]), [['load', 1, 'running'], ['report', 0, 'pending']], 'every task of the run has a row');
  const empty = ganttLayout({ ...tl, bars: [] }, {});
  assert.equal(empty.rows.length, 0);
  assert.ok(empty.ticks.length >= 1 && empty.span > 0);
});

test('the trend scales bars to the longest attempt', () => {
  const trend: Wire.ITrend = {
    task: 'clean',
    points: [
      { run_id: 'r1', attempt: 1, started_at: 'a', duration_s: 4, state: 'failed' },
      { run_id: 'r1', attempt: 2, started_at: 'b', duration_s: 8, state: 'success' },
      { run_id: 'r2', attempt: 1, started_at: 'c', duration_s: null, state: 'running' }
    ]
  };
  const l = trendLayout(trend, 344, 120);
  assert.equal(l.max, 8);
  assert.equal(l.bars.length, 3);
  assert.ok(Math.abs(l.bars[0].height * 2 - l.bars[1].height) < 1e-9);
  assert.equal(l.bars[2].height, 0);
  assert.ok(l.bars[0].x < l.bars[1].x && l.bars[1].x < l.bars[2].x, 'oldest left');
  assert.equal(l.bars[1].fill, stateColour('success'));
});

test('the grid lists runs oldest first and leaves tasks outside a run empty', () => {
  const grid: Wire.IGrid = {
    runs: [
      { run_id: 'new', state: 'failed', started_at: 'b', duration_s: 2 },
      { run_id: 'old', state: 'success', started_at: 'a', duration_s: 1 }
    ],
    tasks: ['load', 'clean'],
    cells: { new: { load: { state: 'failed', attempts: 2, duration_s: 1 } }, old: { load: { state: 'success', attempts: 1, duration_s: 1 }, clean: { state: 'success', attempts: 1, duration_s: 0.5 } } }
  };
  const { runs, rows } = gridRows(grid);
  assert.deepEqual(runs.map(r => r.run_id), ['old', 'new']);
  assert.deepEqual(rows.map(r => [r.task, r.cells.map(c => c?.state ?? null)]), [['load', ['success', 'failed']], ['clean', ['success', null]]]);
  assert.equal(rows[0].cells[1]!.attempts, 2);
});

/** A log growing by chunks, answered from an offset as the server does. */
function growingLog(chunks: string[]) {
  const asked: number[] = [];
  let shown = 0;
  const fetch = async (offset: number): Promise<Wire.ILog> => {
    asked.push(offset);
    shown = Math.min(shown + 1, chunks.length);
    const all = chunks.slice(0, shown).join('');
    const complete = shown === chunks.length;
    return { task: 't', run_id: 'r', attempt: 1, state: complete ? 'success' : 'running', text: all.slice(offset), error: null, traceback: null, output_notebook: null, offset: all.length, complete };
  };
  return { fetch, asked };
}

test('the log follower asks only what follows, appends it, and stops when the attempt ends', async () => {
  const server = growingLog(['one\n', 'two\n', 'three\n']);
  const f = new LogFollower(server.fetch);
  assert.equal(await f.tick(), true);
  assert.equal(f.text, 'one\n');
  await f.tick();
  assert.equal(f.text, 'one\ntwo\n');
  await f.tick();
  assert.equal(f.text, 'one\ntwo\nthree\n');
  assert.equal(f.done, true);
  assert.equal(await f.tick(), false, 'nothing asked once done');
  assert.deepEqual(server.asked, [0, 4, 8]);
});

test('without the offset protocol the follower takes the whole text each time', async () => {
  let n = 0;
  const f = new LogFollower(async () => {
    n++;
    return { task: 't', run_id: 'r', attempt: 1, state: n < 2 ? 'running' : 'failed', text: 'x'.repeat(n), error: n < 2 ? null : 'boom', traceback: null, output_notebook: null };
  });
  await f.tick();
  assert.equal(f.done, false);
  await f.tick();
  assert.equal(f.text, 'xx');
  assert.equal(f.done, true);
  assert.equal(f.last!.error, 'boom');
});
