"""The source of a notebook's injected-parameters cell, as a run writes it.

papermill translates the parameters into the notebook's language (``translate_parameters``,
what ``parameterize_notebook`` puts in the cell tagged ``injected-parameters``); nbflow then
appends the lines that read the secrets from the kernel's environment (``papermill.py``
``_inject_secrets``), in a cell of their own when papermill made none. Pure: no notebook
is read or written, no kernel is involved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nbflow.project.secrets import injection_lines

#: the comment papermill puts at the top of the injected cell (``parameterize_notebook``'s default)
COMMENT = "Parameters"


def injected_source(
    parameters: Mapping[str, Any],
    *,
    kernel_name: str,
    language: str,
    secrets: Iterable[str] = (),
    variables: Mapping[str, str] | None = None,
) -> str:
    """The injected cell a run gives the notebook: ``""`` when it injects none.

    Parameters
    ----------
    parameters
        What papermill injects (overrides, ``upstream``, ``product``), in order.
    kernel_name, language
        The notebook's kernel and language: they choose papermill's translator.
    secrets
        The secret parameters the notebook declares (their values are never written here).
    variables
        Each secret's project variable, which the lines fall back to.
    """
    source = ""
    if parameters:
        from papermill.translators import translate_parameters

        source = translate_parameters(kernel_name, language, dict(parameters), COMMENT)
    names = list(secrets)
    if names:
        lines = "\n".join(injection_lines(names, variables, language=language))
        source = source.rstrip("\n") + "\n" + lines if source else f"# {COMMENT}\n{lines}"
    return source
