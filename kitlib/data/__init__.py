"""Data: registered datasets and the learner's own files, one container family, fetching, safe unpicklers, the offline pack."""
