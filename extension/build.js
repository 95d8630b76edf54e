// Build the prebuilt JupyterLab extension into ../nbflow/labextension, offline.
// JupyterLab's builder needs the core package metadata of the JupyterLab it targets: it is
// read from the jupyterlab Python package (JUPYTERLAB_CORE_PATH, or the python in NBFLOW_PYTHON).
const { execFileSync } = require('child_process');
const path = require('path');

const development = process.argv.includes('--development');
let core = process.env.JUPYTERLAB_CORE_PATH;
if (!core) {
  const python = process.env.NBFLOW_PYTHON || 'python3';
  core = execFileSync(python, ['-c', 'import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging"))'])
    .toString()
    .trim();
}
const builder = require.resolve('@jupyterlab/builder/lib/build-labextension.js');
execFileSync(process.execPath, [builder, ...(development ? ['--development'] : []), '--core-path', core, path.resolve(__dirname)], {
  stdio: 'inherit'
});
