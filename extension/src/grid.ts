// The grid of recent runs x tasks: one coloured cell per task of each run (runs oldest left,
// as time reads), each a button naming its task, run and state. DOM built with textContent only.
import { formatSeconds, stateColour } from './gantt';
import { Wire } from './tokens';

export interface IGridCell {
  run_id: string;
  task: string;
  state: string;
  attempts: number;
  duration_s: number | null;
}

/** The grid's runs oldest first and, per task, its cell in each (null: not in that run). */
export function gridRows(grid: Wire.IGrid): { runs: Wire.IGrid['runs']; rows: { task: string; cells: (IGridCell | null)[] }[] } {
  const runs = [...(grid.runs ?? [])].reverse();
  const rows = (grid.tasks ?? []).map(task => ({
    task,
    cells: runs.map(r => {
      const c = grid.cells?.[r.run_id]?.[task];
      return c ? { run_id: r.run_id, task, state: c.state, attempts: c.attempts, duration_s: c.duration_s } : null;
    })
  }));
  return { runs, rows };
}

export interface IGridPick {
  run(runId: string): void;
  cell(cell: IGridCell): void;
}

export function renderGrid(grid: Wire.IGrid, chosen: { run: string | null; task: string | null }, pick: IGridPick): HTMLTableElement {
  const { runs, rows } = gridRows(grid);
  const table = document.createElement('table');
  table.className = 'nbflow-grid';
  const head = table.createTHead().insertRow();
  head.insertCell().className = 'nbflow-grid-corner';
  for (const r of runs) {
    const th = document.createElement('th');
    th.className = `nbflow-grid-run${r.run_id === chosen.run ? ' nbflow-chosen' : ''}`;
    th.dataset.run = r.run_id;
    th.dataset.state = r.state;
    th.title = `${r.run_id} · ${r.state} · ${r.started_at} · ${formatSeconds(r.duration_s)}`;
    const mark = document.createElement('span');
    mark.className = 'nbflow-grid-run-mark';
    mark.style.background = stateColour(r.state);
    th.append(mark);
    th.addEventListener('click', () => pick.run(r.run_id));
    head.append(th);
  }
  const body = table.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    const name = document.createElement('th');
    name.className = 'nbflow-grid-task';
    name.textContent = row.task;
    name.title = row.task;
    tr.append(name);
    for (const [i, c] of row.cells.entries()) {
      const td = tr.insertCell();
      if (!c) {
        td.className = 'nbflow-grid-empty';
        continue;
      }
      const b = document.createElement('button');
      const isChosen = c.run_id === chosen.run && c.task === chosen.task;
      b.className = `nbflow-grid-cell${isChosen ? ' nbflow-chosen' : ''}`;
      b.style.background = stateColour(c.state);
      b.dataset.run = c.run_id;
      b.dataset.task = c.task;
      b.dataset.state = c.state;
      b.title = `${c.task} · ${runs[i].run_id} · ${c.state}${c.attempts > 1 ? ` · ${c.attempts} attempts` : ''} · ${formatSeconds(c.duration_s)}`;
      if (c.attempts > 1) {
        b.textContent = String(c.attempts);
      }
      b.addEventListener('click', () => pick.cell(c));
      td.append(b);
    }
  }
  return table;
}
