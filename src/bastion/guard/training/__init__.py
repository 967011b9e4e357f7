"""How the guard's classifiers are trained and measured out of source (never imported by the
scanners: a gateway loads weights, not training code)."""
