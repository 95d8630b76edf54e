"""Pure logic: the DAG and the ready queue. Standard library only, no I/O."""
