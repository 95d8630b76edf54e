"""The notebook kind: papermill with nbflow's engine and notebook client."""
