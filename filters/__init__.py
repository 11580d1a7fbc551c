"""Filter specs, prefilters, postfilter and the per-filter packages with their trained artifacts."""
