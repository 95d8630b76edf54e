"""One run: task requests, the runner, retries, the run lock, alerts."""
