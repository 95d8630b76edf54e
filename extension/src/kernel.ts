// Authoring in JupyterLab: a notebook's inputs loaded into its own kernel, and a failed task's
// debug notebook opened and run up to the failing cell. The wording is authoring.ts's.
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, ISessionContext, Notification, showDialog } from '@jupyterlab/apputils';
import { CodeCell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Kernel } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { debugCells, errorNotice, INotice, loadedNotice, runUpstreams } from './authoring';
import { IApi, Wire } from './tokens';

/** Show ``notice``; its whole text (a toast is short) behind "Details", as text. */
export function notify(notice: INotice, id?: string): string {
  const details = (): void => {
    const body = document.createElement('pre');
    body.className = 'nbflow-notice-details';
    body.textContent = notice.details;
    void showDialog({ title: 'nbflow', body: new Widget({ node: body }), buttons: [Dialog.okButton()] });
  };
  const options = {
    autoClose: notice.level === 'success' ? 8000 : (false as const),
    actions: [{ label: 'Details', callback: details }]
  };
  if (id) {
    Notification.update({ id, message: notice.message, type: notice.level, ...options });
    return id;
  }
  return Notification.emit(notice.message, notice.level, options);
}

/** The session's kernel, started (the notebook's own, else ``kernelName``) if there is none yet. */
async function kernelOf(session: ISessionContext, kernelName: string): Promise<Kernel.IKernelConnection> {
  await session.ready;
  if (!session.session?.kernel) {
    await session.changeKernel({ name: session.kernelPreference.name || kernelName });
  }
  const kernel = session.session?.kernel;
  if (!kernel) {
    throw new Error('The notebook has no kernel: choose one, then load the inputs again.');
  }
  return kernel;
}

/** Run ``code`` in the kernel, out of the notebook (no cell, no history); an error reply is thrown. */
async function execute(kernel: Kernel.IKernelConnection, code: string): Promise<void> {
  const future = kernel.requestExecute({ code, silent: false, store_history: false });
  const reply = await future.done;
  if (reply.content.status === 'error') {
    const { ename, evalue } = reply.content as { ename: string; evalue: string };
    throw new Error(`the kernel raised ${ename}: ${evalue}`);
  }
  if (reply.content.status !== 'ok') {
    throw new Error(`the kernel answered ${reply.content.status}`);
  }
}

/**
 * Load what a pipeline run would inject into ``panel``'s notebook into its kernel, and say what
 * was set and what is missing; with ``runFirst``, run the stale upstreams first (and stop if that
 * run fails). The notebook itself is not changed.
 */
export async function loadInputs(api: IApi, panel: NotebookPanel, runFirst = false): Promise<boolean> {
  const path = panel.context.path;
  let progress: string | undefined;
  try {
    await panel.context.ready;
    let inputs = await api.inputs(path);
    if (runFirst && inputs.upstreams.length) {
      progress = Notification.emit(`${inputs.task}: running its stale upstreams (${inputs.upstreams.join(', ')})…`, 'in-progress', {
        autoClose: false
      });
      const failure = await runUpstreams(api, inputs);
      if (failure) {
        notify({ level: 'error', message: `${inputs.task}: ${failure}`, details: failure }, progress);
        return false;
      }
      inputs = await api.inputs(path);
    }
    await execute(await kernelOf(panel.sessionContext, inputs.kernel_name), inputs.code);
    notify(loadedNotice(inputs), progress);
    return true;
  } catch (error) {
    notify(errorNotice(`nbflow could not load the inputs of ${path}`, error), progress);
    return false;
  }
}

/**
 * Open ``debug``'s notebook, run the cells before the failing one in its kernel (outputs shown;
 * stopping at the first error), then make the failing cell the active one, in view.
 */
export async function openDebug(app: JupyterFrontEnd, debug: Wire.IDebug): Promise<void> {
  try {
    const widget = await app.commands.execute('docmanager:open', { path: debug.path, factory: 'Notebook' });
    if (!(widget instanceof NotebookPanel)) {
      throw new Error(`${debug.path} did not open as a notebook`);
    }
    await widget.context.ready;
    await kernelOf(widget.sessionContext, debug.kernel_name);
    const notebook = widget.content;
    const plan = debugCells(notebook.model?.getMetadata('nbflow'), debug.failed_cell, debug.run_cells);
    const progress = Notification.emit(`${debug.task}: running ${plan.runCells.length} cells before the failing one…`, 'in-progress', {
      autoClose: false
    });
    let stopped: string | null = null;
    for (const index of plan.runCells) {
      const cell = notebook.widgets[index];
      if (!cell || cell.model.type !== 'code') {
        continue;
      }
      const reply = await CodeCell.execute(cell as CodeCell, widget.sessionContext);
      if (!reply || reply.content.status !== 'ok') {
        const content = reply?.content as { ename?: string; evalue?: string } | undefined;
        stopped = `cell ${index + 1} ${content?.ename ? `raised ${content.ename}: ${content.evalue ?? ''}` : 'did not finish'}`;
        notebook.activeCellIndex = index;
        break;
      }
    }
    const failed = notebook.widgets[plan.failedCell];
    if (!stopped && failed) {
      notebook.activeCellIndex = plan.failedCell;
    }
    notebook.deselectAll();
    notebook.mode = 'command';
    app.shell.activateById(widget.id);
    const active = notebook.activeCell;
    if (active) {
      await notebook.scrollToCell(active, 'center');
    }
    const where = `run ${debug.run_id}, attempt ${debug.attempt}`;
    notify(
      stopped
        ? {
            level: 'error',
            message: `${debug.task}: ${stopped}, before the failing cell: stopped there.`,
            details: `Debugging ${debug.task} (${where}): ${stopped}, before the failing cell ${plan.failedCell + 1}; stopped there.`
          }
        : {
            level: 'success',
            message: `${debug.task}: ran the cells before the failing one; cell ${plan.failedCell + 1} failed in ${where}.`,
            details: `Debugging ${debug.task} (${where}) in ${debug.path}, working directory ${debug.cwd}.`
          },
      progress
    );
  } catch (error) {
    notify(errorNotice(`nbflow could not open the debug notebook of ${debug.task}`, error));
  }
}
