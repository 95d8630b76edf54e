"""Secrets: parameters whose values come from environment variables and are never written down.

A project maps parameter names to environment variables (``[tool.nbflow.project.secrets]``,
``api_token = "API_TOKEN"``). A notebook that declares the parameter gets the value
through its kernel's environment: the injected-parameters cell holds the line that reads
it, not the value. Whatever the notebook prints is redacted from the executed notebook and
the log, and errors and tracebacks are redacted before they reach the store or an alert.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

MASK = "[secret]"
#: the kernel environment variable that carries a secret parameter's value
ENV_PREFIX = "NBFLOW_SECRET_"


def kernel_env_name(parameter: str) -> str:
    return ENV_PREFIX + parameter.upper()


def injection_lines(
    parameters: Iterable[str], variables: Mapping[str, str] | None = None, language: str = "python"
) -> list[str]:
    """The code that reads each secret in the kernel (what the executed notebook shows), in the
    kernel's ``language`` (``"python"`` or ``"R"``). With the project's variable of a secret
    (``variables``), the code falls back to it, so the executed notebook also runs again on its
    own where that variable is set."""
    if language.strip().lower() == "r":
        return _r_lines(parameters, variables)
    lines = []
    for name in sorted(parameters):
        read = f'__import__("os").environ[{kernel_env_name(name)!r}]'
        if variables and name in variables:
            read = f'(__import__("os").environ.get({kernel_env_name(name)!r}) or __import__("os").environ[{variables[name]!r}])'
        lines.append(f"{name} = {read}  # a secret, from the environment")
    return lines


def _r_lines(parameters: Iterable[str], variables: Mapping[str, str] | None) -> list[str]:
    """R's reading of each secret: as the Python lines, an empty or unset kernel variable falls
    back to the project's, and a secret found in neither stops the notebook."""
    from nbflow.project.rlang import r_string  # only for R notebooks

    lines = []
    for name in sorted(parameters):
        lines.append(
            f"{name} <- Sys.getenv({r_string(kernel_env_name(name))}, unset = NA)  # a secret, from the environment"
        )
        wanted = kernel_env_name(name)
        if variables and name in variables:
            wanted = variables[name]
            lines.append(f"if (is.na({name}) || !nzchar({name})) {name} <- Sys.getenv({r_string(wanted)}, unset = NA)")
        message = f"the secret {name!r} is not set: set the environment variable {wanted}"
        lines.append(f"if (is.na({name})) stop({r_string(message)}, call. = FALSE)")
    return lines


def _variants(value: str) -> set[str]:
    """The forms a value takes in output: itself, and escaped as repr, JSON and bytes show it."""
    forms = {value, repr(value)[1:-1], json.dumps(value)[1:-1], repr(value.encode())[2:-1]}
    forms.add(json.dumps(repr(value)[1:-1])[1:-1])  # a repr inside a saved notebook's JSON
    return {f for f in forms if f}


class Redactor:
    """Replaces secret values (and their escaped forms) in text and in notebooks with a mask."""

    #: a value shorter than this would mask ordinary text everywhere; such secrets are refused
    MIN_LENGTH = 4

    def __init__(self, values: Iterable[str]) -> None:
        forms: set[str] = set()
        for value in values:
            if len(value) >= self.MIN_LENGTH:
                forms |= _variants(value)
        # longest first, so that a form containing another is masked whole
        self.values = sorted(forms, key=len, reverse=True)

    @property
    def longest(self) -> int:
        return len(self.values[0]) if self.values else 0

    def __bool__(self) -> bool:
        return bool(self.values)

    def text(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, MASK)
        return text

    def partial_end(self, text: str) -> int:
        """How many characters at the end of ``text`` begin a secret (0 if none): text cut
        there would keep a piece of a secret that no later redaction can recognise."""
        tail = text[-self.longest :] if self.values else ""
        ends = [
            k for value in self.values for k in range(min(len(value) - 1, len(tail)), 0, -1) if tail.endswith(value[:k])
        ]
        return max(ends, default=0)

    def notebook(self, nb: Any, merge_streams: bool = True) -> None:
        """Redact a notebook's outputs in place: every output, its data of any type and its metadata.

        With ``merge_streams``, adjacent stream outputs are joined first, so that a secret printed
        in two parts is found (not while the notebook still runs: the executor tracks outputs).
        """
        for cell in nb.get("cells", []):
            outputs = cell.get("outputs") or []
            merged: list[Any] = []
            for output in outputs:
                if output.get("output_type") == "stream" and isinstance(output.get("text"), list):
                    output["text"] = _join(output["text"])  # a running cell's text, kept in pieces
                previous = merged[-1] if merged else None
                if (
                    merge_streams
                    and previous is not None
                    and output.get("output_type") == "stream"
                    and previous.get("output_type") == "stream"
                    and previous.get("name") == output.get("name")
                ):
                    previous["text"] = _join(previous["text"]) + _join(output["text"])
                else:
                    merged.append(output)
            for i, output in enumerate(merged):
                merged[i] = self._deep(output)
            if outputs:
                outputs[:] = merged

    def _deep(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self._deep(v) for v in value]
        if isinstance(value, MutableMapping):
            for key in list(value):
                value[key] = self._deep(value[key])
            return value
        return value


def _join(text: Any) -> str:
    return "".join(text) if isinstance(text, list) else str(text)
