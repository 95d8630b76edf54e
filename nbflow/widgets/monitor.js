// The dashboard's compact monitoring: the run's Gantt chart (SVG made in Python, redrawn only
// when it changes) and the grid of recent runs x tasks. A grid cell click asks Python to show
// that run and task; nothing else goes back.

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

function seconds(value) {
  return value === null || value === undefined ? "…" : `${value.toFixed(1)}s`;
}

function render({ model, el }) {
  el.classList.add("nbflow-monitor");
  const gridPart = element("div", "nbflow-monitor-part nbflow-monitor-grid");
  const timelinePart = element("div", "nbflow-monitor-part nbflow-monitor-timeline");
  const gridBody = element("div");
  const timelineBody = element("div");
  gridPart.append(element("div", "nbflow-monitor-title", "Recent runs"), gridBody);
  timelinePart.append(element("div", "nbflow-monitor-title", "Timeline"), timelineBody);
  el.append(gridPart, timelinePart);
  let clicks = 0;

  function choose(run, task, attempt) {
    clicks += 1;
    model.set("clicked", { run, task, attempt, n: clicks });
    model.save_changes();
  }

  function drawTimeline() {
    const svg = model.get("timeline_svg");
    if (svg) {
      timelineBody.innerHTML = svg; // made by nbflow.views.timeline.gantt_svg: every name escaped
    } else {
      timelineBody.replaceChildren(element("div", "nbflow-monitor-empty", "No run to show yet."));
    }
  }

  function drawGrid() {
    const grid = model.get("grid") || {};
    const colours = model.get("colours") || {};
    const shown = model.get("shown") || {};
    const runs = [...(grid.runs || [])].reverse(); // oldest on the left, the newest on the right
    const tasks = grid.tasks || [];
    const cells = grid.cells || {};
    if (!runs.length) {
      gridBody.replaceChildren(element("div", "nbflow-monitor-empty", "No runs yet."));
      return;
    }
    const table = element("table", "nbflow-grid");
    const head = element("tr");
    head.append(element("th"));
    for (const run of runs) {
      const td = element("td");
      const bar = element("button", "nbflow-grid-run");
      bar.style.background = colours[run.state] || "transparent";
      bar.title = `${run.run_id}: ${run.state}, ${run.started_at}, ${seconds(run.duration_s)}`;
      bar.dataset.run = run.run_id;
      if (run.run_id === shown.run) bar.classList.add("nbflow-grid-shown");
      bar.addEventListener("click", () => choose(run.run_id, null, null));
      td.append(bar);
      head.append(td);
    }
    table.append(head);
    for (const task of tasks) {
      const row = element("tr");
      if (task === shown.task) row.classList.add("nbflow-grid-selected");
      const name = element("th", "", task);
      name.title = task;
      row.append(name);
      for (const run of runs) {
        const td = element("td");
        const cell = (cells[run.run_id] || {})[task];
        const box = element("button", cell ? "nbflow-grid-cell" : "nbflow-grid-cell nbflow-grid-none");
        box.dataset.run = run.run_id;
        box.dataset.task = task;
        if (cell) {
          box.dataset.state = cell.state;
          box.style.background = colours[cell.state] || "transparent";
          const tries = cell.attempts > 1 ? `, ${cell.attempts} attempts` : "";
          box.title = `${task} in ${run.run_id}: ${cell.state}${tries}, ${seconds(cell.duration_s)}`;
          box.addEventListener("click", () => choose(run.run_id, task, cell.attempts || null));
        } else {
          box.title = `${task}: not in ${run.run_id}`;
          box.disabled = true;
        }
        if (run.run_id === shown.run) box.classList.add("nbflow-grid-shown");
        td.append(box);
        row.append(td);
      }
      table.append(row);
    }
    gridBody.replaceChildren(table);
  }

  model.on("change:timeline_svg", drawTimeline);
  model.on("change:grid", drawGrid);
  model.on("change:shown", drawGrid);
  model.on("change:colours", drawGrid);
  drawTimeline();
  drawGrid();
  return () => {
    model.off("change:timeline_svg", drawTimeline);
    model.off("change:grid", drawGrid);
    model.off("change:shown", drawGrid);
    model.off("change:colours", drawGrid);
  };
}

export default { render };
