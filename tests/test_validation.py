"""Bad pipelines are refused before anything runs: a clear message, no traceback, exit 2."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from nbflow import errors
from nbflow.pipeline import Pipeline
from tests.conftest import notebook_path, write_notebook

# each bad input -> the exception it is reported as, and what the message must say
BAD_NOTEBOOKS = [
    (
        "invalid_json.ipynb",
        errors.MalformedNotebookError,
        "invalid_json.ipynb is not a valid notebook: it is not valid JSON",
    ),
    ("nbformat_3.ipynb", errors.MalformedNotebookError, "nbformat_3.ipynb is not a valid notebook: nbformat 3"),
    ("cell_without_source.ipynb", errors.MalformedNotebookError, "cell 0 has no text 'source'"),
    ("upstream_not_a_list.ipynb", errors.InvalidDeclarationError, "'upstream' must be a list of notebook names"),
    ("upstream_not_literal.ipynb", errors.InvalidDeclarationError, "must be a literal"),
    ("upstream_list_of_ints.ipynb", errors.InvalidDeclarationError, "non-strings"),
    ("product_bad_shape.ipynb", errors.InvalidDeclarationError, "'product' must be a path or a dict"),
    ("parameters_syntax_error.ipynb", errors.MalformedNotebookError, "parameters cell 0 is not valid Python"),
    ("upstream_unknown.ipynb", errors.UnknownUpstreamError, "upstream_unknown.ipynb declares upstream 'lod'"),
]


@pytest.mark.parametrize(("fixture", "exc_type", "message"), BAD_NOTEBOOKS)
def test_bad_notebook_is_named(tmp_path: Path, nbflow_cli, fixture: str, exc_type: type, message: str) -> None:
    shutil.copy(notebook_path(fixture), tmp_path / fixture)
    write_notebook(tmp_path, "load", "upstream = None")
    with pytest.raises(errors.PipelineValidationError) as info:
        Pipeline.from_dir(tmp_path)
    [problem] = info.value.problems
    assert isinstance(problem, exc_type)
    assert message in str(problem)

    for command in (["run", str(tmp_path)], ["dag", str(tmp_path)]):
        result = nbflow_cli(*command)
        assert result.exit_code == 2, result
        assert message in result.stderr
        assert "Traceback" not in result.stderr
        assert result.stdout == ""
    assert not (tmp_path / "_nbflow").exists(), "nothing may run or be recorded for an invalid pipeline"


def test_unknown_upstream_suggests_a_close_match(tmp_path: Path, nbflow_cli) -> None:
    write_notebook(tmp_path, "load", "upstream = None")
    write_notebook(tmp_path, "clean", "upstream = ['lod']")
    result = nbflow_cli("dag", str(tmp_path))
    assert result.exit_code == 2
    assert (
        "clean.ipynb declares upstream 'lod', which is not a task of this pipeline. Did you mean 'load'?"
        in result.stderr
    )


def test_cycle_names_its_loop(tmp_path: Path, nbflow_cli) -> None:
    write_notebook(tmp_path, "alpha", "upstream = ['gamma']")
    write_notebook(tmp_path, "beta", "upstream = ['alpha']")
    write_notebook(tmp_path, "gamma", "upstream = ['beta']")
    result = nbflow_cli("run", str(tmp_path))
    assert result.exit_code == 2
    assert "Cycle in upstreams: alpha -> beta -> gamma -> alpha." in result.stderr


def test_every_problem_is_reported_at_once(tmp_path: Path, nbflow_cli) -> None:
    shutil.copy(notebook_path("invalid_json.ipynb"), tmp_path)
    write_notebook(tmp_path, "a", "upstream = ['b']")
    write_notebook(tmp_path, "b", "upstream = ['a']")
    write_notebook(tmp_path, "c", "upstream = ['nope']")
    result = nbflow_cli("dag", str(tmp_path))
    assert result.exit_code == 2
    assert "3 problems found:" in result.stderr
    for part in ("invalid_json.ipynb", "Cycle in upstreams: a -> b -> a", "declares upstream 'nope'"):
        assert part in result.stderr


def test_duplicate_task_names(tmp_path: Path, nbflow_cli) -> None:
    write_notebook(tmp_path, "Train", "upstream = None")
    write_notebook(tmp_path, "train", "upstream = None")
    result = nbflow_cli("dag", str(tmp_path))
    assert result.exit_code == 2
    assert "Two tasks are named" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "nope=1"], "no notebook declares a parameter 'nope'"),
        (["-p", "load.nope=1"], "load.ipynb declares no parameter 'nope'. Declared: n"),
        (["-p", "lod.n=1"], "-p lod.n=...: no task named 'lod' in this pipeline. Did you mean 'load'?"),
        (["-p", "upstream=[1]"], "'upstream' is set by nbflow from the graph"),
        (["-p", "novalue"], "is not NAME=VALUE"),
        (["--only", "lod"], "No task named 'lod' in this pipeline. Did you mean 'load'?"),
    ],
)
def test_bad_command_line(tmp_path: Path, nbflow_cli, args: list[str], message: str) -> None:
    write_notebook(tmp_path, "load", "upstream = None\nn = 1")
    result = nbflow_cli("run", str(tmp_path), *args)
    assert result.exit_code == 2, result
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_folder_and_empty_folder(tmp_path: Path, nbflow_cli) -> None:
    result = nbflow_cli("run", str(tmp_path / "missing"))
    assert result.exit_code == 2 and "is not a folder" in result.stderr
    result = nbflow_cli("dag", str(tmp_path))
    assert result.exit_code == 2 and "holds no notebooks" in result.stderr


def test_status_without_runs_is_a_clear_error(tmp_path: Path, nbflow_cli) -> None:
    write_notebook(tmp_path, "load", "upstream = None")
    result = nbflow_cli("status", str(tmp_path))
    assert result.exit_code == 2
    assert "No runs recorded" in result.stderr


@pytest.mark.parametrize(
    "error",
    [
        errors.MalformedNotebookError("a.ipynb", "it is not valid JSON"),
        errors.InvalidDeclarationError("a.ipynb", "'upstream' must be a list", 3),
        errors.UnknownUpstreamError("clean", "lod", ["load"], path="clean.ipynb"),
        errors.CycleError(["a", "b", "a"]),
        errors.DuplicateTaskError("a", ["a.ipynb", "A.ipynb"]),
        errors.UnknownTaskError("x", ["y"]),
        errors.ParameterError("bad"),
        errors.PipelineValidationError([errors.CycleError(["a", "a"]), errors.ParameterError("bad")]),
        errors.RunNotFoundError("state.duckdb", "r1"),
        errors.StoreLockedError("state.duckdb", 60, "lock held"),
        errors.UnknownKernelError("a.ipynb", "julia", ["python3"]),
        errors.StoreError("state.duckdb", "not a DuckDB file"),
        errors.PipelineBusyError("/p", "process 1 on h"),
        errors.StateFolderError("/p/_nbflow", "Read-only file system"),
    ],
)
def test_errors_survive_pickling(error: errors.NbflowError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert repr(copy.__dict__) == repr(error.__dict__)


def test_a_kernel_that_is_not_installed_is_named_before_anything_runs(tmp_path: Path, nbflow_cli) -> None:
    write_notebook(tmp_path, "load", "upstream = None")
    write_notebook(tmp_path, "fit", "upstream = ['load']", kernel="julia-1.9")
    result = nbflow_cli("run", str(tmp_path))
    assert result.exit_code == 2
    assert "fit.ipynb asks for the kernel 'julia-1.9', which is not installed here (installed:" in result.stderr
    assert "python3" in result.stderr
    assert not (tmp_path / "_nbflow").exists()


@pytest.mark.parametrize(
    ("metadata", "cell_tags", "message"),
    [
        ({"kernelspec": "python3"}, ["parameters"], "its 'metadata.kernelspec' is not an object"),
        ({"kernelspec": {"name": 3}}, ["parameters"], "its 'metadata.kernelspec' is not an object"),
        ({}, 5, "cell 0 has 'tags' that are not a list of strings"),
    ],
)
def test_odd_metadata_is_named_not_a_traceback(tmp_path: Path, nbflow_cli, metadata, cell_tags, message) -> None:
    import json

    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": metadata,
        "cells": [{"cell_type": "code", "metadata": {"tags": cell_tags}, "source": "upstream = None", "outputs": []}],
    }
    (tmp_path / "odd.ipynb").write_text(json.dumps(nb))
    result = nbflow_cli("dag", str(tmp_path))
    assert result.exit_code == 2
    assert f"odd.ipynb is not a valid notebook: {message}" in result.stderr


def test_a_read_only_pipeline_folder_is_a_clear_error(tmp_path: Path, nbflow_cli) -> None:
    import os

    write_notebook(tmp_path, "load", "upstream = None")
    (tmp_path / "_nbflow").write_text("a file where nbflow's folder should be")
    result = nbflow_cli("run", str(tmp_path))
    assert result.exit_code == 2, result
    assert f"nbflow cannot write its folder {tmp_path / '_nbflow'}" in result.stderr
    assert os.path.isfile(tmp_path / "_nbflow")


def test_a_product_inside_nbflows_own_folder_is_refused(tmp_path: Path, nbflow_cli) -> None:
    write_notebook(tmp_path, "sneaky", "upstream = None\nproduct = '_nbflow/state.duckdb'")
    result = nbflow_cli("dag", str(tmp_path))
    assert result.exit_code == 2
    assert "sneaky.ipynb, cell 0: 'product'" in result.stderr and "inside nbflow's own folder" in result.stderr
