"""One parser per source format; each takes an extracted wheel folder and returns items."""
