"""Secrets: parameters whose values come from environment variables and are never written down.

A project maps parameter names to environment variables (``[tool.nbflow.secrets]``,
``api_token = "API_TOKEN"``). A notebook that declares the parameter gets the value
through its kernel's environment: the injected-parameters cell holds the line that reads
it, not the value. Whatever the notebook prints is redacted from the executed notebook and
the log, and errors and tracebacks are redacted before they reach the store or an alert.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MASK = "[secret]"
#: the kernel environment variable that carries a secret parameter's value
ENV_PREFIX = "NBFLOW_SECRET_"


def kernel_env_name(parameter: str) -> str:
    return ENV_PREFIX + parameter.upper()


def injection_lines(parameters: Iterable[str]) -> list[str]:
    """The code that reads each secret in the kernel (what the executed notebook shows)."""
    return [
        f'{name} = __import__("os").environ[{kernel_env_name(name)!r}]  # a secret, from the environment'
        for name in sorted(parameters)
    ]


class Redactor:
    """Replaces secret values in text, and in a notebook's outputs, with a mask."""

    def __init__(self, values: Iterable[str]) -> None:
        # longest first, so that a secret containing another is masked whole; tiny values
        # would mask ordinary text everywhere, so they are left alone
        self.values = sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self.values)

    def text(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, MASK)
        return text

    def notebook(self, nb: Any) -> None:
        """Redact a notebook's outputs in place."""
        for cell in nb.get("cells", []):
            for output in cell.get("outputs", []) or []:
                self._output(output)

    def _output(self, output: Any) -> None:
        if "text" in output:
            output["text"] = self._value(output["text"])
        if "evalue" in output:
            output["evalue"] = self.text(output["evalue"])
        if "traceback" in output:
            output["traceback"] = [self.text(line) for line in output["traceback"]]
        data = output.get("data")
        if isinstance(data, Mapping):
            for mime, value in list(data.items()):
                if mime.startswith("text/") or mime in ("application/json",):
                    data[mime] = self._value(value)

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.text(v) if isinstance(v, str) else v for v in value]
        return value
