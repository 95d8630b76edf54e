"""Authoring a pipeline: a notebook's inputs loaded into a live kernel, a failed attempt reproduced.

:mod:`.inputs` answers "what would a run inject into this notebook now" (the injected cell,
and which upstreams have not produced their products yet); :mod:`.debug` turns a failed
attempt's executed notebook into one that reproduces it. Both read the folder and the store
and never run a task.
"""
