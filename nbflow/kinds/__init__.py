"""Task kinds: what one attempt of a notebook, SQL, Python or HTTP task does."""
