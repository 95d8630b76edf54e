// Plugin wiring only: the panel in the left sidebar, commands, the notebook toolbar buttons.
import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, ToolbarButton, showErrorMessage } from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { bugIcon, downloadIcon, launchIcon, runIcon, treeViewIcon } from '@jupyterlab/ui-components';

import { serverApi } from './handler';
import { loadInputs, openDebug } from './kernel';
import { PipelineModel } from './model';
import { PipelinePanel } from './panel';
import { CommandIDs, VERSION } from './tokens';

/** The task a notebook is in the panel's pipeline (its path below the folder, without .ipynb). */
function taskOf(folder: string, notebookPath: string): { folder: string; task: string } {
  const inside = folder === '' || notebookPath.startsWith(folder + '/');
  const base = inside ? folder : PathExt.dirname(notebookPath);
  const rel = base ? notebookPath.slice(base.length + 1) : notebookPath;
  return { folder: base, task: rel.replace(/\.ipynb$/, '') };
}

async function checkVersion(): Promise<void> {
  try {
    const info = await serverApi.info();
    if (info.version !== VERSION) {
      void showErrorMessage(
        'nbflow: front end and server differ',
        `The pipeline panel is ${VERSION}, the server's nbflow is ${info.version}. ` +
          'Reinstall nbflow in the environment that runs JupyterLab (pip install --force-reinstall nbflow), then restart JupyterLab.'
      );
    }
  } catch (error) {
    console.warn('nbflow: the server extension does not answer; is nbflow installed where JupyterLab runs?', error);
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbflow:plugin',
  description: "nbflow's pipeline panel: the DAG of a folder of notebooks, runs, logs, upstream editing.",
  autoStart: true,
  requires: [ILabShell, IDefaultFileBrowser, INotebookTracker],
  optional: [ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    browser: IDefaultFileBrowser,
    notebooks: INotebookTracker,
    palette: ICommandPalette | null
  ) => {
    const model = new PipelineModel(serverApi);
    const debugTask = async (task: string): Promise<void> => {
      const debug = await model.debug(task);
      if (debug) {
        await openDebug(app, debug);
      }
    };
    const panel = new PipelinePanel(model, {
      open: path => void app.commands.execute('docmanager:open', { path }),
      debug: task => void debugTask(task),
      browse: path => void browser.model.cd('/' + path)
    });
    panel.title.icon = treeViewIcon;
    shell.add(panel, 'left', { rank: 400 });

    // nbflow is asked nothing until the panel is shown: browsing folders with it closed sends no request
    let versionChecked = false;
    model.activeChanged.connect((_, active) => {
      if (active && !versionChecked) {
        versionChecked = true;
        void checkVersion();
      }
    });
    const follow = () => void model.follow(browser.model.path);
    browser.model.pathChanged.connect(follow);
    follow();

    app.commands.addCommand(CommandIDs.openPanel, {
      label: 'Show the nbflow pipeline panel',
      execute: () => shell.activateById(panel.id)
    });
    app.commands.addCommand(CommandIDs.runPipeline, {
      label: 'Run the pipeline (nbflow)',
      icon: runIcon,
      execute: () => model.runPipeline(panel.formParams())
    });
    app.commands.addCommand(CommandIDs.stopRun, {
      label: 'Stop the pipeline run (nbflow)',
      execute: () => model.stop()
    });
    app.commands.addCommand(CommandIDs.runNotebook, {
      label: 'Run this notebook with its upstreams (nbflow)',
      icon: runIcon,
      isEnabled: () => notebooks.currentWidget !== null,
      execute: async () => {
        const current = notebooks.currentWidget;
        if (!current) {
          return;
        }
        const { folder, task } = taskOf(model.path ?? browser.model.path, current.context.path);
        shell.activateById(panel.id); // shown first: then the model asks about this folder
        await model.setPath(folder);
        await model.runPipeline(panel.formParams(), [task]);
      }
    });
    app.commands.addCommand(CommandIDs.loadInputs, {
      label: 'nbflow: Load Pipeline Inputs into Kernel',
      caption: 'Load the inputs a pipeline run would inject',
      icon: downloadIcon,
      isEnabled: () => notebooks.currentWidget !== null,
      execute: () => (notebooks.currentWidget ? loadInputs(serverApi, notebooks.currentWidget) : false)
    });
    app.commands.addCommand(CommandIDs.runUpstreamsLoadInputs, {
      label: 'nbflow: Run Stale Upstreams, then Load Inputs',
      isEnabled: () => notebooks.currentWidget !== null,
      execute: () => (notebooks.currentWidget ? loadInputs(serverApi, notebooks.currentWidget, true) : false)
    });
    app.commands.addCommand(CommandIDs.debugTask, {
      label: 'nbflow: Debug Failed Task',
      icon: bugIcon,
      isEnabled: () => model.canDebug(model.selected),
      execute: () => (model.selected ? debugTask(model.selected) : undefined)
    });
    app.commands.addCommand(CommandIDs.openView, {
      label: args => (args.fromMenu ? 'Open as nbflow pipeline' : 'nbflow: Open Pipeline View'),
      caption: 'The pipeline in the main area: graph, recent runs, timeline, durations',
      icon: launchIcon,
      execute: async args => {
        const chosen = args.fromMenu ? browser.selectedItems().next() : undefined;
        const path = typeof args.path === 'string' ? args.path : chosen && !chosen.done && chosen.value.type === 'directory' ? chosen.value.path : browser.model.path;
        const { openPipelineView } = await import('./view'); // its own chunk, fetched when first opened
        openPipelineView(app, path);
      }
    });
    app.contextMenu.addItem({ command: CommandIDs.openView, args: { fromMenu: true }, selector: '.jp-DirListing-item[data-isdir="true"]', rank: 50 });
    const openView = () => void app.commands.execute(CommandIDs.openView, { path: model.path ?? browser.model.path });
    panel.toolbar.addItem(
      'openView',
      new ToolbarButton({ icon: launchIcon, tooltip: 'Open in main area: the graph, recent runs, timeline, durations', className: 'nbflow-open-view', onClick: openView })
    );
    for (const command of Object.values(CommandIDs)) {
      palette?.addItem({ command, category: 'nbflow' });
    }
    notebooks.widgetAdded.connect((_, nb: NotebookPanel) => {
      const run = new ToolbarButton({
        icon: runIcon,
        label: 'nbflow',
        tooltip: 'Run this notebook with its upstreams (nbflow)',
        className: 'nbflow-toolbar-run',
        onClick: () => void app.commands.execute(CommandIDs.runNotebook)
      });
      nb.toolbar.insertItem(10, 'nbflowRun', run);
      const inputs = new ToolbarButton({
        icon: downloadIcon,
        label: 'Load inputs',
        tooltip: 'Load the inputs a pipeline run would inject',
        className: 'nbflow-toolbar-inputs',
        onClick: () => void loadInputs(serverApi, nb)
      });
      nb.toolbar.insertItem(11, 'nbflowInputs', inputs);
    });
  }
};

export default plugin;
