// The pipeline graph: the SVG layout (sent once per structure) painted with each task's
// state (sent on every change). Painting touches only attributes, so 300 tasks stay cheap.

// A node's task is its data-task-key, the name percent-encoded: exact whatever the name holds
// (the title shows the name, and parsing HTML may change its text). Null if it cannot be read.
function taskOf(g) {
  const key = g.getAttribute("data-task-key");
  try {
    return key === null ? null : decodeURIComponent(key);
  } catch {
    return null; // not UTF-8: a file name that is not text, which the store cannot hold either
  }
}

function nodesOf(root) {
  const nodes = new Map();
  for (const g of root.querySelectorAll("g.node")) {
    const name = taskOf(g);
    if (name === null) continue;
    const shape = g.querySelector("path, polygon, rect, ellipse");
    const texts = g.querySelectorAll("text");
    const title = g.querySelector("title");
    const note = texts.length > 1 ? texts[texts.length - 1] : null;
    // shown: the name as drawn (a control character as its symbol), for the tooltip
    nodes.set(name, { g, shape, note, title, shown: title ? title.textContent : name });
  }
  return nodes;
}

function render({ model, el }) {
  el.classList.add("nbflow-graph");
  const bar = document.createElement("div");
  bar.className = "nbflow-graph-bar";
  const fit = document.createElement("button");
  fit.className = "nbflow-graph-fit";
  fit.textContent = "Fit to width";
  fit.title = "Fit the graph to the width, or show it at full size";
  bar.appendChild(fit);
  const legend = document.createElement("span");
  legend.className = "nbflow-graph-legend";
  bar.appendChild(legend);
  const view = document.createElement("div");
  view.className = "nbflow-graph-view";
  el.append(bar, view);
  let nodes = new Map();
  let fitted = null;

  function applyFit() {
    const svg = view.querySelector("svg");
    if (!svg) return;
    // Fitted: never wider than the view (a small graph keeps its size); else full size, scrolled.
    svg.style.maxWidth = fitted ? "100%" : "none";
    svg.style.height = fitted ? "auto" : "";
    fit.textContent = fitted ? "Full size" : "Fit to width";
  }

  function paint() {
    const paints = model.get("paint") || {};
    const selected = model.get("selected");
    const seen = new Map();
    for (const [name, node] of nodes) {
      const [state, colour, note] = paints[name] || ["", "#ffffff", ""];
      if (node.shape) {
        node.shape.setAttribute("fill", colour);
        node.shape.setAttribute("stroke-width", name === selected ? "3" : "1");
      }
      node.g.dataset.state = state;
      node.g.dataset.task = name;
      if (node.note) node.note.textContent = note || "\u2007";
      if (node.title) {
        node.title.textContent = state ? `${node.shown}: ${state}${note ? " (" + note + ")" : ""}` : node.shown;
      }
      if (state) seen.set(state, colour);
    }
    legend.replaceChildren(
      ...[...seen].map(([state, colour]) => {
        const item = document.createElement("span");
        item.className = "nbflow-graph-key";
        item.style.background = colour;
        item.textContent = state;
        return item;
      }),
    );
  }

  function draw() {
    view.innerHTML = model.get("svg");
    nodes = nodesOf(view);
    for (const [name, node] of nodes) {
      node.g.addEventListener("click", () => {
        model.set("selected", name);
        model.save_changes();
      });
    }
    if (fitted === null) fitted = nodes.size <= 60; // big graphs start at full size, readable
    applyFit();
    paint();
  }

  fit.addEventListener("click", () => {
    fitted = !fitted;
    applyFit();
  });
  model.on("change:svg", draw);
  model.on("change:paint", paint);
  model.on("change:selected", paint);
  draw();
  return () => {
    model.off("change:svg", draw);
    model.off("change:paint", paint);
    model.off("change:selected", paint);
  };
}

export default { render };
