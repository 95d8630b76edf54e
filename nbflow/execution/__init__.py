"""What an attempt is made of, whatever its kind and wherever it runs: the request and its
outcome, the control that stops it, the executor interface, kernels and capped logs."""
