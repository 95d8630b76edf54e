// The sidebar panel's button that opens the pipeline view. The view itself (view.ts) is loaded
// the first time it is opened: JupyterLab's start does not download it.
import { launchIcon } from '@jupyterlab/ui-components';

/** The sidebar panel's "Open in main area" button, drawn as JupyterLab's toolbar buttons are. */
export function openViewButton(onClick: () => void): HTMLElement {
  const bar = el('div', 'jp-Toolbar nbflow-panel-toolbar');
  const b = el('button', 'jp-ToolbarButtonComponent jp-mod-minimal jp-Button nbflow-open-view');
  b.title = 'Open the pipeline in the main area: graph, recent runs, timeline, durations';
  b.append(launchIcon.element({ tag: 'span', className: 'jp-ToolbarButtonComponent-icon' }), el('span', 'jp-ToolbarButtonComponent-label', 'Open in main area'));
  b.addEventListener('click', onClick);
  bar.append(b);
  return bar;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls: string, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = cls;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}
