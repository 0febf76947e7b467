"""nbfeatures."""
