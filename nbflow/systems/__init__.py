"""The systems a pipeline reaches through its connections: clients, and products that live there.

``clients`` opens a ready client for a :class:`~nbflow.project.connections.Connection`;
``connect`` is :func:`nbflow.connect` (a name in, a client out, in a notebook or a Python
task); ``targets`` answers for products that are objects (``s3://``) or tables
(``table://``): do they exist, what is their checksum. Drivers are imported only when used.
"""
